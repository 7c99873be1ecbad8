import java.sql.*;

/**
 * pgJDBC against a protected target: prints one line per observation.
 *   update URL USER PASSWORD VALUE ID   - autocommit UPDATE through a PreparedStatement
 *   txn    URL USER PASSWORD VALUE ID   - the same UPDATE inside a transaction block
 */
public class HeldFlow {
    static String state(SQLException e) {
        return "SQLSTATE " + e.getSQLState();
    }

    static String update(Connection c, String value, int id) {
        try (PreparedStatement ps = c.prepareStatement("UPDATE t SET v = ? WHERE id = ?")) {
            ps.setString(1, value);
            ps.setInt(2, id);
            return "UPDATED " + ps.executeUpdate();
        } catch (SQLException e) {
            return state(e);
        }
    }

    static String select(Connection c) {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
            rs.next();
            return "SELECT " + rs.getInt(1);
        } catch (SQLException e) {
            return state(e);
        }
    }

    public static void main(String[] a) throws Exception {
        String mode = a[0];
        try (Connection c = DriverManager.getConnection(a[1], a[2], a[3])) {
            String value = a[4];
            int id = Integer.parseInt(a[5]);
            if (mode.equals("update")) {
                System.out.println(update(c, value, id));
            } else {
                c.setAutoCommit(false);
                System.out.println(select(c));
                System.out.println(update(c, value, id));
                System.out.println(select(c));
                c.rollback();
                System.out.println(select(c));
            }
        }
    }
}
