import java.sql.*;

/**
 * The proxy's own commands over pgJDBC's extended protocol (what DBeaver
 * uses): SET/SHOW airlock.*, SHOW airlock.requests, a held UPDATE with bound
 * parameters, and CALL airlock.run(?) with a bound request number.
 *
 * java ProxyCommands hold URL USER PASSWORD VALUE ID
 * java ProxyCommands run URL USER PASSWORD REQUEST
 */
public class ProxyCommands {
    public static void main(String[] a) throws Exception {
        String mode = a[0];
        try (Connection c = DriverManager.getConnection(a[1], a[2], a[3])) {
            if (mode.equals("hold")) {
                try (PreparedStatement s = c.prepareStatement("SET airlock.reason = 'driver reason jdbc'")) {
                    s.execute();
                    System.out.println("set ok");
                }
                try (PreparedStatement s = c.prepareStatement("SHOW airlock.reason");
                     ResultSet r = s.executeQuery()) {
                    r.next();
                    System.out.println("reason " + r.getString(1));
                }
                try (PreparedStatement s = c.prepareStatement("UPDATE t SET v = ? WHERE id = ?")) {
                    s.setString(1, a[4]);
                    s.setInt(2, Integer.parseInt(a[5]));
                    s.executeUpdate();
                    System.out.println("UPDATED");
                } catch (SQLException e) {
                    System.out.println("SQLSTATE " + e.getSQLState());
                }
                try (PreparedStatement s = c.prepareStatement("SHOW airlock.requests");
                     ResultSet r = s.executeQuery()) {
                    int n = 0;
                    while (r.next()) n++;
                    System.out.println("requests " + n);
                }
                try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT 1")) {
                    r.next();
                    System.out.println("still in sync " + r.getInt(1));
                }
            } else {
                try (PreparedStatement s = c.prepareStatement("CALL airlock.run(?)")) {
                    s.setInt(1, Integer.parseInt(a[4]));
                    s.execute();
                    System.out.println("ran " + s.getUpdateCount());
                }
                try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT 1")) {
                    r.next();
                    System.out.println("still in sync " + r.getInt(1));
                }
            }
        }
    }
}
