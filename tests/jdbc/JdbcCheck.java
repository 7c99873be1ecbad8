// pgJDBC fidelity check for airlock (driven by tests/pg_jdbc.rs and tests/pg_protected.rs).
//
// Usage: java -cp <classes>:/usr/share/java/postgresql.jar JdbcCheck URL USER PASSWORD MODE [FILE]
//
// MODE
//   full      create tables in an empty database and exercise the driver: typed prepared
//             statements, metadata, batches, a server-side cursor, the prepareThreshold switch to
//             named statements, errors; prints a deterministic transcript (one line per observation).
//   readonly  read-only walk over whatever is in schema public (metadata + every table's rows
//             through a cursor with fetch size): used on protected targets.
//   held FILE FILE holds statements separated by NUL bytes; each one is run as a
//             PreparedStatement (extended protocol) and the outcome printed as
//             "held <n> <SQLSTATE or OK>" followed by whether the connection still works.
//
// Everything printed must be identical for a direct connection and a connection through the
// proxy, so nothing that legitimately differs (backend pid, user name given at login,
// application_name, OIDs, times of day) is ever printed.
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.sql.*;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.*;
import java.util.zip.CRC32;

import org.postgresql.util.PSQLException;
import org.postgresql.util.ServerErrorMessage;

public class JdbcCheck {
    static String url, user, password;

    static void p(String s) {
        System.out.println(s);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            System.err.println("usage: JdbcCheck URL USER PASSWORD MODE [FILE]");
            System.exit(2);
        }
        // Fixed zone: the driver sends it as the TimeZone startup parameter and uses it to
        // render java.sql.Timestamp values, so the transcript does not depend on the machine.
        TimeZone.setDefault(TimeZone.getTimeZone("Europe/Berlin"));
        url = args[0];
        user = args[1];
        password = args[2];
        String mode = args[3];
        switch (mode) {
            case "full":
                full();
                break;
            case "readonly":
                try (Connection c = connect("")) {
                    header(c);
                    metadata(c);
                    dumpAllTables(c);
                    errors(c, false);
                }
                break;
            case "held":
                held(args[4]);
                break;
            default:
                System.err.println("unknown mode " + mode);
                System.exit(2);
        }
        p("done");
    }

    static Connection connect(String extra) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        return DriverManager.getConnection(url + extra, props);
    }

    // ---------------------------------------------------------------- canonical printing

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder("\\x");
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static String esc(String s) {
        StringBuilder sb = new StringBuilder();
        for (char ch : s.toCharArray()) {
            if (ch == '\n') sb.append("\\n");
            else if (ch == '\r') sb.append("\\r");
            else if (ch == '\t') sb.append("\\t");
            else if (ch == '\\') sb.append("\\\\");
            else sb.append(ch);
        }
        return sb.toString();
    }

    static String canon(Object o) throws SQLException {
        if (o == null) return "NULL";
        if (o instanceof byte[]) return "bytes:" + hex((byte[]) o);
        if (o instanceof java.sql.Array) {
            java.sql.Array a = (java.sql.Array) o;
            Object arr = a.getArray();
            return "array<" + a.getBaseTypeName() + ">:" + canonArray(arr);
        }
        if (o instanceof org.postgresql.util.PGobject) {
            org.postgresql.util.PGobject po = (org.postgresql.util.PGobject) o;
            return "pgobject<" + po.getType() + ">:" + esc(String.valueOf(po.getValue()));
        }
        if (o instanceof BigDecimal) return "BigDecimal:" + ((BigDecimal) o).toPlainString() + "/scale=" + ((BigDecimal) o).scale();
        if (o instanceof String) return "String:\"" + esc((String) o) + "\"";
        return o.getClass().getSimpleName() + ":" + esc(o.toString());
    }

    static String canonArray(Object arr) throws SQLException {
        if (arr == null) return "NULL";
        if (arr instanceof Object[]) {
            StringBuilder sb = new StringBuilder("[");
            Object[] xs = (Object[]) arr;
            for (int i = 0; i < xs.length; i++) {
                if (i > 0) sb.append(", ");
                sb.append(xs[i] != null && xs[i].getClass().isArray() ? canonArray(xs[i]) : canon(xs[i]));
            }
            return sb.append("]").toString();
        }
        // primitive arrays
        int n = java.lang.reflect.Array.getLength(arr);
        StringBuilder sb = new StringBuilder("prim[");
        for (int i = 0; i < n; i++) {
            if (i > 0) sb.append(", ");
            sb.append(java.lang.reflect.Array.get(arr, i));
        }
        return sb.append("]").toString();
    }

    static void printResultSet(String label, ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        int n = md.getColumnCount();
        StringBuilder cols = new StringBuilder();
        for (int i = 1; i <= n; i++) {
            if (i > 1) cols.append(", ");
            cols.append(md.getColumnLabel(i)).append(" ").append(md.getColumnTypeName(i))
                .append("/").append(md.getColumnType(i));
        }
        p(label + " columns: " + cols);
        int row = 0;
        while (rs.next()) {
            row++;
            StringBuilder sb = new StringBuilder();
            for (int i = 1; i <= n; i++) {
                if (i > 1) sb.append(" | ");
                sb.append(md.getColumnLabel(i)).append("=").append(canon(rs.getObject(i)));
            }
            p(label + " row " + row + ": " + sb);
        }
        p(label + " rows: " + row);
    }

    static void query(Connection c, String label, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            printResultSet(label, rs);
        }
    }

    static void printError(String label, SQLException e) {
        StringBuilder sb = new StringBuilder(label + " error: sqlstate=" + e.getSQLState());
        if (e instanceof PSQLException && ((PSQLException) e).getServerErrorMessage() != null) {
            ServerErrorMessage m = ((PSQLException) e).getServerErrorMessage();
            sb.append(" severity=").append(m.getSeverity())
              .append(" message=").append(esc(String.valueOf(m.getMessage())))
              .append(" detail=").append(esc(String.valueOf(m.getDetail())))
              .append(" hint=").append(esc(String.valueOf(m.getHint())))
              .append(" position=").append(m.getPosition())
              .append(" where=").append(esc(String.valueOf(m.getWhere())));
        } else {
            sb.append(" message=").append(esc(String.valueOf(e.getMessage())));
        }
        p(sb.toString());
    }

    // ---------------------------------------------------------------- sections

    static void header(Connection c) throws SQLException {
        p("connect: ok");
        DatabaseMetaData md = c.getMetaData();
        p("product: " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion()
            + " major=" + md.getDatabaseMajorVersion() + " minor=" + md.getDatabaseMinorVersion());
        query(c, "whoami", "SELECT current_user, session_user, current_database(), current_schema()");
        query(c, "settings", "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds, "
            + "current_setting('client_encoding') AS ce, current_setting('server_encoding') AS se, "
            + "current_setting('extra_float_digits') AS efd, current_setting('integer_datetimes') AS idt, "
            + "current_setting('standard_conforming_strings') AS scs, current_setting('IntervalStyle') AS ist");
    }

    static void full() throws Exception {
        try (Connection c = connect("")) {
            header(c);
            setup(c);
            types(c);
            metadata(c);
            batch(c);
            cursor(c);
            threshold(c);
            errors(c, true);
            notices(c);
            savepoints(c);
            query(c, "prepared", "SELECT name, statement, parameter_types::text AS params, from_sql "
                + "FROM pg_prepared_statements ORDER BY name");
        }
        // reWriteBatchedInserts: the driver rewrites the batch into multi-row INSERTs.
        try (Connection c = connect("&reWriteBatchedInserts=true")) {
            p("rewrite connect: ok");
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO t_batch2 (id, v, n) VALUES (?, ?, ?)")) {
                for (int i = 1; i <= 100; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "rw-" + i);
                    ps.setBigDecimal(3, new BigDecimal(i).divide(new BigDecimal(8)));
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                p("rewrite batch counts: " + summarize(counts));
            }
            query(c, "rewrite check", "SELECT count(*), sum(id), sum(n), md5(string_agg(v, ',' ORDER BY id)) FROM t_batch2");
        }
    }

    static void setup(Connection c) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("CREATE TABLE t_types (id int PRIMARY KEY, i int, b bigint, s text, n numeric(24,6), "
                + "ts timestamp, tstz timestamptz, by bytea, bo boolean, ia int[], ta text[], u uuid, "
                + "d date, f8 float8, s2 smallint)");
            st.execute("COMMENT ON TABLE t_types IS 'typed values'");
            st.execute("COMMENT ON COLUMN t_types.s IS 'some text'");
            st.execute("CREATE TABLE t_batch (id int PRIMARY KEY, v text NOT NULL, n numeric DEFAULT 0)");
            st.execute("CREATE TABLE t_batch2 (id int PRIMARY KEY, v text NOT NULL, n numeric DEFAULT 0)");
            st.execute("CREATE TABLE t_big AS SELECT g AS id, md5(g::text) AS h FROM generate_series(1, 1000) g");
            st.execute("ALTER TABLE t_big ADD PRIMARY KEY (id)");
            st.execute("CREATE TABLE t_serial (id bigserial PRIMARY KEY, label varchar(40) UNIQUE, "
                + "created date DEFAULT '2020-01-01')");
            st.execute("CREATE INDEX t_types_s_idx ON t_types (s)");
            st.execute("CREATE VIEW v_types AS SELECT id, s FROM t_types");
            p("setup: ok");
        }
    }

    static void types(Connection c) throws SQLException {
        byte[] all = new byte[256];
        for (int i = 0; i < 256; i++) all[i] = (byte) i;
        String sql = "INSERT INTO t_types (id, i, b, s, n, ts, tstz, by, bo, ia, ta, u, d, f8, s2) "
            + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            // row 1: ordinary values
            ps.setInt(1, 1);
            ps.setInt(2, 42);
            ps.setLong(3, 9007199254740993L);
            ps.setString(4, "hello, world");
            ps.setBigDecimal(5, new BigDecimal("12345678901234.123456"));
            ps.setTimestamp(6, Timestamp.valueOf("2024-02-29 12:34:56.789"));
            ps.setObject(7, OffsetDateTime.of(2024, 6, 30, 23, 59, 59, 123456000, ZoneOffset.ofHours(2)));
            ps.setBytes(8, "airlock".getBytes(StandardCharsets.UTF_8));
            ps.setBoolean(9, true);
            ps.setArray(10, c.createArrayOf("int4", new Integer[] {1, 2, 3}));
            ps.setArray(11, c.createArrayOf("text", new String[] {"a", "b c", "d,e"}));
            ps.setObject(12, UUID.fromString("123e4567-e89b-12d3-a456-426614174000"));
            ps.setObject(13, LocalDate.of(1999, 12, 31));
            ps.setDouble(14, 3.141592653589793);
            ps.setShort(15, (short) -7);
            p("insert 1: " + ps.executeUpdate());

            // row 2: edge values
            ps.setInt(1, 2);
            ps.setInt(2, Integer.MIN_VALUE);
            ps.setLong(3, Long.MAX_VALUE);
            ps.setString(4, "unicode h\u00e9llo \u2603 \ud83d\udc18 'quote' \"dq\" back\\slash\nnewline\ttab");
            ps.setBigDecimal(5, new BigDecimal("-0.000001"));
            ps.setTimestamp(6, Timestamp.valueOf("1970-01-01 00:00:00"));
            ps.setObject(7, OffsetDateTime.of(1999, 12, 31, 23, 0, 0, 0, ZoneOffset.UTC));
            ps.setBytes(8, all);
            ps.setBoolean(9, false);
            ps.setArray(10, c.createArrayOf("int4", new Integer[] {null, -1, Integer.MAX_VALUE}));
            ps.setArray(11, c.createArrayOf("text", new String[] {"", null, "NULL", "x\"y", "{brace}"}));
            ps.setObject(12, UUID.fromString("00000000-0000-0000-0000-000000000000"));
            ps.setObject(13, LocalDate.of(2000, 2, 29));
            ps.setDouble(14, -1.0e-300);
            ps.setShort(15, Short.MAX_VALUE);
            p("insert 2: " + ps.executeUpdate());

            // row 3: null of each type, typed nulls
            ps.setInt(1, 3);
            ps.setNull(2, Types.INTEGER);
            ps.setNull(3, Types.BIGINT);
            ps.setNull(4, Types.VARCHAR);
            ps.setNull(5, Types.NUMERIC);
            ps.setNull(6, Types.TIMESTAMP);
            ps.setNull(7, Types.TIMESTAMP_WITH_TIMEZONE);
            ps.setNull(8, Types.BINARY);
            ps.setNull(9, Types.BOOLEAN);
            ps.setNull(10, Types.ARRAY);
            ps.setNull(11, Types.ARRAY);
            ps.setNull(12, Types.OTHER);
            ps.setNull(13, Types.DATE);
            ps.setNull(14, Types.DOUBLE);
            ps.setNull(15, Types.SMALLINT);
            p("insert 3: " + ps.executeUpdate());

            // row 4: empty values, empty arrays
            ps.setInt(1, 4);
            ps.setInt(2, 0);
            ps.setLong(3, 0L);
            ps.setString(4, "");
            ps.setBigDecimal(5, BigDecimal.ZERO);
            ps.setObject(6, LocalDateTime.of(2038, 1, 19, 3, 14, 8, 1000));
            ps.setObject(7, OffsetDateTime.of(2038, 1, 19, 3, 14, 8, 0, ZoneOffset.ofHoursMinutes(-9, -30)));
            ps.setBytes(8, new byte[0]);
            ps.setObject(9, Boolean.TRUE);
            ps.setArray(10, c.createArrayOf("int4", new Integer[] {}));
            ps.setArray(11, c.createArrayOf("text", new String[] {}));
            ps.setObject(12, UUID.fromString("ffffffff-ffff-ffff-ffff-ffffffffffff"));
            ps.setObject(13, LocalDate.of(1, 1, 1));
            ps.setDouble(14, Double.POSITIVE_INFINITY);
            ps.setShort(15, Short.MIN_VALUE);
            p("insert 4: " + ps.executeUpdate());
        }

        query(c, "types getObject", "SELECT * FROM t_types ORDER BY id");

        // Same rows again with every accessor.
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("SELECT id, i, b, s, n, ts, tstz, by, bo, ia, ta, u, d, f8, s2 FROM t_types ORDER BY id")) {
            while (rs.next()) {
                int id = rs.getInt(1);
                StringBuilder sb = new StringBuilder();
                for (int col = 2; col <= 15; col++) {
                    String s = rs.getString(col);
                    sb.append(col == 2 ? "" : " | ").append(s == null ? "NULL" : esc(s));
                }
                p("types getString " + id + ": " + sb);
                byte[] by = rs.getBytes(8);
                p("types getBytes " + id + ": " + (by == null ? "NULL" : hex(by) + " len=" + by.length));
                OffsetDateTime odt = rs.getObject(7, OffsetDateTime.class);
                LocalDateTime ldt = rs.getObject(6, LocalDateTime.class);
                p("types java.time " + id + ": tstz=" + odt + " ts=" + ldt
                    + " d=" + rs.getObject(13, LocalDate.class)
                    + " i=" + rs.getInt(2) + (rs.wasNull() ? "(null)" : "")
                    + " bigdec=" + (rs.getBigDecimal(5) == null ? "NULL" : rs.getBigDecimal(5).toPlainString())
                    + " bool=" + rs.getBoolean(9) + (rs.wasNull() ? "(null)" : ""));
            }
        }

        // Parameters in the WHERE clause, one per type (the driver binds them as typed parameters).
        String[][] probes = {
            {"int", "SELECT id FROM t_types WHERE i = ? ORDER BY id"},
            {"bigint", "SELECT id FROM t_types WHERE b = ? ORDER BY id"},
            {"text", "SELECT id FROM t_types WHERE s = ? ORDER BY id"},
            {"numeric", "SELECT id FROM t_types WHERE n = ? ORDER BY id"},
            {"timestamp", "SELECT id FROM t_types WHERE ts = ? ORDER BY id"},
            {"timestamptz", "SELECT id FROM t_types WHERE tstz = ? ORDER BY id"},
            {"bytea", "SELECT id FROM t_types WHERE by = ? ORDER BY id"},
            {"boolean", "SELECT id FROM t_types WHERE bo = ? ORDER BY id"},
            {"uuid", "SELECT id FROM t_types WHERE u = ? ORDER BY id"},
            {"intarray", "SELECT id FROM t_types WHERE ia = ? ORDER BY id"},
            {"textarray", "SELECT id FROM t_types WHERE ta && ? ORDER BY id"},
            {"isnull", "SELECT id FROM t_types WHERE ?::int IS NULL AND s IS NULL ORDER BY id"},
        };
        for (String[] probe : probes) {
            try (PreparedStatement ps = c.prepareStatement(probe[1])) {
                switch (probe[0]) {
                    case "int": ps.setInt(1, 42); break;
                    case "bigint": ps.setLong(1, Long.MAX_VALUE); break;
                    case "text": ps.setString(1, "hello, world"); break;
                    case "numeric": ps.setBigDecimal(1, new BigDecimal("-0.000001")); break;
                    case "timestamp": ps.setTimestamp(1, Timestamp.valueOf("2024-02-29 12:34:56.789")); break;
                    case "timestamptz": ps.setObject(1, OffsetDateTime.of(2000, 1, 1, 0, 0, 0, 0, ZoneOffset.ofHours(1))); break;
                    case "bytea": ps.setBytes(1, all); break;
                    case "boolean": ps.setBoolean(1, false); break;
                    case "uuid": ps.setObject(1, UUID.fromString("ffffffff-ffff-ffff-ffff-ffffffffffff")); break;
                    case "intarray": ps.setArray(1, c.createArrayOf("int4", new Integer[] {1, 2, 3})); break;
                    case "textarray": ps.setArray(1, c.createArrayOf("text", new String[] {"NULL", "zzz"})); break;
                    case "isnull": ps.setNull(1, Types.INTEGER); break;
                }
                try (ResultSet rs = ps.executeQuery()) {
                    StringBuilder ids = new StringBuilder();
                    while (rs.next()) ids.append(ids.length() == 0 ? "" : ",").append(rs.getInt(1));
                    p("param " + probe[0] + ": ids=[" + ids + "]");
                }
            }
        }

        // Computed values through parameters: the server echoes what it received.
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT ?::int + 1 AS i, ?::bigint * 2 AS b, ?::text || '!' AS s, ?::numeric / 3 AS n, "
                + "?::timestamp + interval '1 day' AS ts, ?::timestamptz AS tstz, length(?::bytea) AS bl, "
                + "NOT ?::boolean AS bo, array_length(?::int[], 1) AS al, ?::text[] AS ta, ?::uuid AS u, "
                + "'1 year 2 mons 3 days 04:05:06.789'::interval AS iv, '{\"a\": [1, 2, {\"b\": null}]}'::jsonb AS j")) {
            ps.setInt(1, 41);
            ps.setLong(2, 1L << 40);
            ps.setString(3, "param");
            ps.setBigDecimal(4, new BigDecimal("10"));
            ps.setTimestamp(5, Timestamp.valueOf("2023-12-31 23:59:59.999999"));
            ps.setObject(6, OffsetDateTime.of(2021, 3, 28, 1, 30, 0, 0, ZoneOffset.UTC));
            ps.setBytes(7, all);
            ps.setBoolean(8, true);
            ps.setArray(9, c.createArrayOf("int4", new Integer[] {5, 6, 7, 8}));
            ps.setArray(10, c.createArrayOf("text", new String[] {"x", null, "y z"}));
            ps.setObject(11, UUID.fromString("123e4567-e89b-12d3-a456-426614174000"));
            try (ResultSet rs = ps.executeQuery()) {
                printResultSet("computed", rs);
            }
        }
    }

    // CARDINALITY and PAGES (getIndexInfo) come from pg_class.reltuples/relpages, which autovacuum and
    // ANALYZE may change at any moment: they are not a property of the connection, so not printed.
    static final Set<String> VOLATILE_META = new HashSet<>(Arrays.asList("CARDINALITY", "PAGES"));

    static void printMetaRs(String label, ResultSet rs) throws SQLException {
        ResultSetMetaData md = rs.getMetaData();
        int n = md.getColumnCount();
        int row = 0;
        while (rs.next()) {
            row++;
            StringBuilder sb = new StringBuilder();
            for (int i = 1; i <= n; i++) {
                if (VOLATILE_META.contains(md.getColumnLabel(i).toUpperCase())) continue;
                if (i > 1) sb.append(" ");
                String v = rs.getString(i);
                sb.append(md.getColumnLabel(i)).append("=").append(v == null ? "NULL" : esc(v));
            }
            p(label + " " + row + ": " + sb);
        }
        p(label + " rows: " + row);
    }

    static void metadata(Connection c) throws SQLException {
        DatabaseMetaData md = c.getMetaData();
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
            printMetaRs("getTables", rs);
        }
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"VIEW"})) {
            printMetaRs("getTables(VIEW)", rs);
        }
        try (ResultSet rs = md.getColumns(null, "public", "t%", "%")) {
            printMetaRs("getColumns", rs);
        }
        List<String> tables = new ArrayList<>();
        try (ResultSet rs = md.getTables(null, "public", "%", new String[] {"TABLE"})) {
            while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
        }
        for (String t : tables) {
            try (ResultSet rs = md.getPrimaryKeys(null, "public", t)) {
                printMetaRs("getPrimaryKeys(" + t + ")", rs);
            }
            try (ResultSet rs = md.getIndexInfo(null, "public", t, false, false)) {
                printMetaRs("getIndexInfo(" + t + ")", rs);
            }
        }
        try (ResultSet rs = md.getSchemas()) {
            printMetaRs("getSchemas", rs);
        }
    }

    static String summarize(int[] counts) {
        TreeMap<Integer, Integer> m = new TreeMap<>();
        for (int x : counts) m.merge(x, 1, Integer::sum);
        StringBuilder sb = new StringBuilder("n=" + counts.length);
        for (Map.Entry<Integer, Integer> e : m.entrySet()) sb.append(" ").append(e.getValue()).append("x").append(e.getKey());
        return sb.toString();
    }

    static void batch(Connection c) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO t_batch (id, v, n) VALUES (?, ?, ?)")) {
            for (int i = 1; i <= 100; i++) {
                ps.setInt(1, i);
                ps.setString(2, "row-" + i + (i % 7 == 0 ? " \u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9" : ""));
                if (i % 10 == 0) ps.setNull(3, Types.NUMERIC);
                else ps.setBigDecimal(3, new BigDecimal(i).movePointLeft(2));
                ps.addBatch();
            }
            int[] counts = ps.executeBatch();
            p("batch counts: " + summarize(counts));
        }
        query(c, "batch check", "SELECT count(*), sum(id), sum(n), count(n), md5(string_agg(v, ',' ORDER BY id)) FROM t_batch");
        // A batch that fails part-way: the whole batch is one transaction in autocommit mode.
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO t_batch (id, v) VALUES (?, ?)")) {
            for (int i = 200; i < 205; i++) {
                ps.setInt(1, i == 203 ? 1 : i); // 1 already exists -> unique violation
                ps.setString(2, "dup-" + i);
                ps.addBatch();
            }
            ps.executeBatch();
            p("failing batch: no error?!");
        } catch (BatchUpdateException e) {
            SQLException next = e.getNextException();
            p("failing batch: sqlstate=" + e.getSQLState() + " next=" + (next == null ? "NULL" : next.getSQLState())
                + " counts=" + summarize(e.getUpdateCounts()));
        }
        query(c, "batch after failure", "SELECT count(*) FROM t_batch");
        // Statement batch (simple statements)
        try (Statement st = c.createStatement()) {
            st.addBatch("UPDATE t_batch SET v = v || '+' WHERE id <= 10");
            st.addBatch("DELETE FROM t_batch WHERE id > 95");
            st.addBatch("INSERT INTO t_serial (label) VALUES ('one'), ('two')");
            p("statement batch counts: " + Arrays.toString(st.executeBatch()));
        }
        // Generated keys
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO t_serial (label) VALUES (?)", Statement.RETURN_GENERATED_KEYS)) {
            ps.setString(1, "three");
            p("generated insert: " + ps.executeUpdate());
            try (ResultSet rs = ps.getGeneratedKeys()) {
                printResultSet("generated keys", rs);
            }
        }
    }

    static void cursor(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.setFetchSize(10);
            try (ResultSet rs = st.executeQuery("SELECT id, h FROM t_big ORDER BY id")) {
                long count = 0, sum = 0;
                CRC32 crc = new CRC32();
                while (rs.next()) {
                    count++;
                    sum += rs.getLong(1);
                    crc.update(rs.getString(2).getBytes(StandardCharsets.UTF_8));
                }
                p("cursor: count=" + count + " sum=" + sum + " crc=" + Long.toHexString(crc.getValue()));
            }
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT id, h, ?::text AS tag FROM t_big WHERE id > ? ORDER BY id DESC")) {
            ps.setFetchSize(7);
            ps.setString(1, "tag");
            ps.setInt(2, 900);
            try (ResultSet rs = ps.executeQuery()) {
                long count = 0, sum = 0;
                CRC32 crc = new CRC32();
                while (rs.next()) {
                    count++;
                    sum += rs.getLong(1);
                    crc.update((rs.getString(2) + rs.getString(3)).getBytes(StandardCharsets.UTF_8));
                }
                p("prepared cursor: count=" + count + " sum=" + sum + " crc=" + Long.toHexString(crc.getValue()));
            }
        }
        // Two interleaved open portals.
        try (Statement a = c.createStatement(); Statement b = c.createStatement()) {
            a.setFetchSize(3);
            b.setFetchSize(4);
            try (ResultSet ra = a.executeQuery("SELECT id FROM t_big WHERE id <= 20 ORDER BY id");
                 ResultSet rb = b.executeQuery("SELECT id FROM t_big WHERE id > 980 ORDER BY id")) {
                StringBuilder sb = new StringBuilder();
                boolean ma = true, mb = true;
                while (ma || mb) {
                    if (ma && (ma = ra.next())) sb.append("a").append(ra.getInt(1)).append(" ");
                    if (mb && (mb = rb.next())) sb.append("b").append(rb.getInt(1)).append(" ");
                }
                p("interleaved: " + sb.toString().trim());
            }
        }
        c.commit();
        c.setAutoCommit(true);
    }

    static void threshold(Connection c) throws SQLException {
        // prepareThreshold defaults to 5: from the 5th execution on the driver uses a named
        // server-side statement (and binary transfer for the types it supports).
        try (PreparedStatement ps = c.prepareStatement(
                "SELECT ?::int * 2 AS dbl, h, ?::timestamptz AS at, ?::numeric + 0.5 AS n FROM t_big WHERE id = ?")) {
            for (int i = 1; i <= 10; i++) {
                ps.setInt(1, i);
                ps.setObject(2, OffsetDateTime.of(2020, 1, i, 12, 0, 0, 0, ZoneOffset.ofHours(i - 5)));
                ps.setBigDecimal(3, new BigDecimal(i * 1000));
                ps.setInt(4, i * 3);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        p("threshold " + i + ": dbl=" + canon(rs.getObject(1)) + " h=" + rs.getString(2)
                            + " at=" + canon(rs.getObject(3)) + " n=" + canon(rs.getObject(4)));
                    }
                }
            }
        }
        try (PreparedStatement ps = c.prepareStatement("UPDATE t_big SET h = upper(h) WHERE id = ?")) {
            int total = 0;
            for (int i = 1; i <= 10; i++) {
                ps.setInt(1, i);
                total += ps.executeUpdate();
            }
            p("threshold update total: " + total);
        }
        query(c, "after threshold", "SELECT count(*) FILTER (WHERE h = upper(h)) AS upper_rows, md5(string_agg(h, '' ORDER BY id)) FROM t_big");
    }

    static void errors(Connection c, boolean write) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.executeQuery("SELECT 1/0");
            p("div0: no error?!");
        } catch (SQLException e) {
            printError("div0", e);
        }
        query(c, "after div0", "SELECT 42 AS answer");
        try (PreparedStatement ps = c.prepareStatement("SELECT nosuchcolumn FROM t_types WHERE id = ?")) {
            ps.setInt(1, 1);
            ps.executeQuery();
            p("undefined column: no error?!");
        } catch (SQLException e) {
            printError("undefined column", e);
        }
        try (PreparedStatement ps = c.prepareStatement("SELECT ?::int")) {
            ps.setString(1, "not a number");
            ps.executeQuery();
            p("bad param: no error?!");
        } catch (SQLException e) {
            printError("bad param", e);
        }
        // Error inside a transaction block: the block is aborted until rollback.
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.executeQuery("SELECT 1");
            try {
                st.executeQuery("SELECT 1/0");
            } catch (SQLException e) {
                printError("txn div0", e);
            }
            try {
                st.executeQuery("SELECT 1");
                p("txn after error: no error?!");
            } catch (SQLException e) {
                printError("txn after error", e);
            }
        }
        c.rollback();
        c.setAutoCommit(true);
        query(c, "after rollback", "SELECT 'usable' AS state");
        if (write) {
            try (Statement st = c.createStatement()) {
                st.executeUpdate("INSERT INTO t_batch (id, v) VALUES (1, 'dup')");
                p("unique: no error?!");
            } catch (SQLException e) {
                printError("unique", e);
            }
        }
    }

    static void notices(Connection c) throws SQLException {
        try (Statement st = c.createStatement()) {
            st.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; RAISE WARNING 'careful'; END $$");
            SQLWarning w = st.getWarnings();
            while (w != null) {
                p("notice: sqlstate=" + w.getSQLState() + " message=" + esc(w.getMessage()));
                w = w.getNextWarning();
            }
        }
    }

    static void savepoints(Connection c) throws SQLException {
        c.setAutoCommit(false);
        try (Statement st = c.createStatement()) {
            st.executeUpdate("INSERT INTO t_serial (label) VALUES ('sp-kept')");
            Savepoint sp = c.setSavepoint("sp1");
            st.executeUpdate("INSERT INTO t_serial (label) VALUES ('sp-dropped')");
            try {
                st.executeUpdate("INSERT INTO t_serial (label) VALUES ('sp-kept')");
            } catch (SQLException e) {
                printError("savepoint dup", e);
            }
            c.rollback(sp);
            st.executeUpdate("INSERT INTO t_serial (label) VALUES ('sp-after')");
        }
        c.commit();
        c.setAutoCommit(true);
        query(c, "savepoints", "SELECT id, label, created FROM t_serial ORDER BY id");
    }

    static void dumpAllTables(Connection c) throws SQLException {
        List<String> tables = new ArrayList<>();
        try (ResultSet rs = c.getMetaData().getTables(null, "public", "%", new String[] {"TABLE"})) {
            while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
        }
        c.setAutoCommit(false);
        for (String t : tables) {
            try (Statement st = c.createStatement()) {
                st.setFetchSize(10);
                try (ResultSet rs = st.executeQuery("SELECT * FROM public.\"" + t + "\" ORDER BY 1")) {
                    printResultSet("table " + t, rs);
                }
            }
        }
        c.commit();
        c.setAutoCommit(true);
        try (PreparedStatement ps = c.prepareStatement("SELECT count(*) FROM pg_class WHERE relname LIKE ? AND relnamespace = 'public'::regnamespace")) {
            for (int i = 0; i < 6; i++) {
                ps.setString(1, "%" + (char) ('a' + i) + "%");
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    p("relname like " + (char) ('a' + i) + ": " + rs.getLong(1));
                }
            }
        }
    }

    static String usable(Connection c) {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
            rs.next();
            return rs.getInt(1) == 1 ? "usable" : "weird";
        } catch (SQLException e) {
            return "unusable:" + e.getSQLState();
        }
    }

    static void held(String file) throws Exception {
        String all = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        String[] stmts = all.split("\u0000");
        try (Connection c = connect("")) {
            p("connect: ok");
            for (int i = 0; i < stmts.length; i++) {
                String sql = stmts[i];
                if (sql.trim().isEmpty()) continue;
                String outcome;
                try (PreparedStatement ps = c.prepareStatement(sql)) {
                    ps.execute();
                    outcome = "OK";
                } catch (SQLException e) {
                    outcome = String.valueOf(e.getSQLState());
                    if (!outcome.startsWith("AL")) outcome += " (" + esc(String.valueOf(e.getMessage())) + ")";
                }
                String after = usable(c);
                if (after.equals("unusable:25P02")) {
                    // pgJDBC sends "BEGIN; DELETE ...; COMMIT" as three statements in one batch:
                    // BEGIN runs, the held DELETE fails, COMMIT is skipped until Sync, exactly as
                    // if the DELETE had failed in Postgres. The block is aborted; ROLLBACK ends it.
                    try (Statement st = c.createStatement()) {
                        st.execute("ROLLBACK");
                    } catch (SQLException e) {
                        // reported by the second check
                    }
                    after = "aborted-block,after-rollback:" + usable(c);
                }
                p("held " + (i + 1) + " " + outcome + " " + after);
            }
        }
    }
}
