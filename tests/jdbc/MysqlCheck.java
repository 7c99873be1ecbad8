// What MariaDB Connector/J sees of a schema: server-side prepared statements
// with parameters of several types, DatabaseMetaData (what DBeaver's
// navigator calls), a 100k-row result, streamed. Run directly and through
// airlock; tests/mysql_drivers.rs compares the transcripts.
//   java MysqlCheck <jdbc-url> <user> <password>
import java.sql.*;
import java.math.BigDecimal;

public class MysqlCheck {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT id, name, price, at, blobby, big FROM kinds WHERE id <= ? AND (name IS NULL OR name <> ?) AND price IS NULL OR price > ? ORDER BY id")) {
                ps.setInt(1, 3);
                ps.setString(2, "nope");
                ps.setBigDecimal(3, new BigDecimal("-1.5"));
                try (ResultSet rs = ps.executeQuery()) {
                    ResultSetMetaData md = rs.getMetaData();
                    for (int i = 1; i <= md.getColumnCount(); i++) {
                        System.out.println("column " + md.getColumnName(i) + " " + md.getColumnTypeName(i) + " " + md.getPrecision(i) + " " + md.getScale(i));
                    }
                    while (rs.next()) {
                        StringBuilder row = new StringBuilder("row");
                        for (int i = 1; i <= md.getColumnCount(); i++) {
                            Object o = rs.getObject(i);
                            row.append(" | ").append(o == null ? "NULL" : (o instanceof byte[] ? "bytes" + ((byte[]) o).length : o.toString()));
                        }
                        System.out.println(row);
                    }
                }
            }
            DatabaseMetaData meta = c.getMetaData();
            try (ResultSet rs = meta.getTables(c.getCatalog(), null, "%", new String[] {"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_NAME"));
            }
            try (ResultSet rs = meta.getColumns(c.getCatalog(), null, "kinds", "%")) {
                while (rs.next()) System.out.println("col " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " " + rs.getInt("COLUMN_SIZE") + " " + rs.getString("IS_NULLABLE"));
            }
            try (Statement st = c.createStatement()) {
                st.setFetchSize(1000);
                long n = 0, sum = 0;
                try (ResultSet rs = st.executeQuery("SELECT seq, CONCAT('v', seq) FROM seq_1_to_100000")) {
                    while (rs.next()) { n++; sum += rs.getLong(1); }
                }
                System.out.println("streamed " + n + " " + sum);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT ? + 1, CONCAT(?, 'x'), ?")) {
                ps.setLong(1, 41);
                ps.setString(2, "é🚀");
                ps.setNull(3, Types.VARCHAR);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    System.out.println("params " + rs.getLong(1) + " " + rs.getString(2) + " " + rs.getString(3));
                }
            }
            try {
                c.createStatement().executeQuery("SELECT * FROM nope");
            } catch (SQLException e) {
                System.out.println("error " + e.getErrorCode() + " " + e.getSQLState());
            }
        }
    }
}
