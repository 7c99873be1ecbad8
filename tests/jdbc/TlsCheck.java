// pgJDBC checks over TLS for airlock (driven by tests/pg_tls_drivers.rs).
//
// Usage: java -cp <classes>:/usr/share/java/postgresql.jar TlsCheck URL USER PASSWORD MODE [ARGS]
//
// MODE
//   large ROUNDS    ROUNDS times: a text COPY (SELECT ...) TO STDOUT of 50,688,895 bytes through
//                   CopyManager.copyOut and a 100,000-row SELECT (rows of about 300 bytes, read
//                   whole: fetch size 0), both checked against values computed here.
//   appname ADMIN_URL ADMIN_USER ADMIN_PASSWORD
//                   connects with ApplicationName=myapp; prints SHOW application_name, the
//                   driver's view (getClientInfo("ApplicationName") and the ParameterStatus it
//                   tracks) and what pg_stat_activity says for the session's backend on a direct
//                   connection (ADMIN_URL); then SET application_name = 'other' and the same again.
//
// Transcript on stdout is deterministic (no times, no pids); timings go to stderr. The last line
// is "done" when the program ran to its end. Exit status 0 when every check held, 1 when one
// failed ("FAIL ..." lines say which), 3 when an operation stalled past its watchdog deadline
// ("STALLED ..." line), 2 for usage errors.
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.sql.*;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class TlsCheck {
    static String url, user, password;
    static final List<String> failed = new ArrayList<>();

    static final int N_ROWS = 100_000;
    static final int PAD_WIDTH = 500;
    static final String COPY_SQL = "COPY (SELECT g, repeat('x', " + PAD_WIDTH
            + ") FROM generate_series(1, " + N_ROWS + ") g) TO STDOUT";
    static final String SELECT_SQL = "SELECT g, md5(g::text) AS h, repeat(chr(65 + g % 26), 200 + g % 100) AS pad "
            + "FROM generate_series(1, " + N_ROWS + ") g";
    static final int STEP_SECONDS = Integer.parseInt(System.getenv().getOrDefault("TLS_CHECK_STEP_SECONDS", "60"));

    static void p(String s) {
        System.out.println(s);
        System.out.flush();
    }

    static void err(String s) {
        System.err.println(s);
        System.err.flush();
    }

    static void check(boolean ok, String line, String detail) {
        p(line);
        if (!ok) {
            failed.add(line);
            p("FAIL " + line + (detail.isEmpty() ? "" : ": " + detail));
        }
    }

    // ---------------------------------------------------------------- watchdog

    static volatile String stepLabel = null;
    static volatile long stepDeadline = 0;
    static volatile java.util.function.Supplier<String> stepProgress = () -> "";

    static void step(String label, int seconds, java.util.function.Supplier<String> progress) {
        stepProgress = progress == null ? () -> "" : progress;
        stepDeadline = System.nanoTime() + seconds * 1_000_000_000L;
        stepLabel = label + "\u0000" + seconds;
    }

    static void clear() {
        stepLabel = null;
    }

    static void startWatchdog() {
        Thread t = new Thread(() -> {
            while (true) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                String l = stepLabel;
                if (l == null || System.nanoTime() < stepDeadline) continue;
                String[] parts = l.split("\u0000");
                String prog = stepProgress.get();
                String msg = "STALLED " + parts[0] + ": no completion within " + parts[1] + " s"
                        + (prog.isEmpty() ? "" : " (" + prog + ")");
                System.out.println(msg);
                System.out.flush();
                System.err.println(msg);
                System.err.flush();
                Runtime.getRuntime().halt(3);
            }
        });
        t.setDaemon(true);
        t.start();
    }

    // ---------------------------------------------------------------- main

    public static void main(String[] args) throws Exception {
        if (args.length < 4) {
            err("usage: TlsCheck URL USER PASSWORD MODE [ARGS]");
            System.exit(2);
        }
        url = args[0];
        user = args[1];
        password = args[2];
        String mode = args[3];
        startWatchdog();
        p("mode " + mode);
        switch (mode) {
            case "large":
                large(Integer.parseInt(args[4]));
                break;
            case "appname":
                appname(args[4], args[5], args[6]);
                break;
            default:
                err("unknown mode " + mode);
                System.exit(2);
        }
        if (!failed.isEmpty()) {
            p("failed " + failed.size() + " check(s)");
            p("done");
            System.exit(1);
        }
        p("done");
    }

    static Connection connect(Properties extra) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("connectTimeout", "15");
        props.putAll(extra);
        return DriverManager.getConnection(url, props);
    }

    // ---------------------------------------------------------------- large results

    static class Counting extends OutputStream {
        long n = 0;
        final MessageDigest md5;

        Counting() throws Exception {
            md5 = MessageDigest.getInstance("MD5");
        }

        @Override
        public void write(int b) {
            n++;
            md5.update((byte) b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            n += len;
            md5.update(b, off, len);
        }
    }

    static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) sb.append(String.format("%02x", x & 0xff));
        return sb.toString();
    }

    static void large(int rounds) throws Exception {
        Counting expected = new Counting();
        byte[] pad = "x".repeat(PAD_WIDTH).getBytes(StandardCharsets.US_ASCII);
        for (int g = 1; g <= N_ROWS; g++) {
            expected.write(Integer.toString(g).getBytes(StandardCharsets.US_ASCII), 0, Integer.toString(g).length());
            expected.write('\t');
            expected.write(pad, 0, pad.length);
            expected.write('\n');
        }
        long expBytes = expected.n;
        String expMd5 = hex(expected.md5.digest());
        long expSumG = 0, expSumPad = 0;
        for (int g = 1; g <= N_ROWS; g++) {
            expSumG += g;
            expSumPad += 200 + g % 100;
        }
        String expLastH = hex(MessageDigest.getInstance("MD5").digest(Integer.toString(N_ROWS).getBytes(StandardCharsets.US_ASCII)));

        try (Connection c = connect(new Properties())) {
            p("connected");
            CopyManager cm = c.unwrap(PGConnection.class).getCopyAPI();
            for (int rnd = 1; rnd <= rounds; rnd++) {
                final Counting got = new Counting();
                long t = System.nanoTime();
                step("pgjdbc round " + rnd + " copy", STEP_SECONDS, () -> got.n + " of " + expBytes + " bytes received");
                cm.copyOut(COPY_SQL, got);
                clear();
                err(String.format("round %d copy %.2f s", rnd, (System.nanoTime() - t) / 1e9));
                String gotMd5 = hex(got.md5.digest());
                boolean ok = got.n == expBytes && gotMd5.equals(expMd5);
                check(ok, "round " + rnd + " copy " + (ok ? "ok" : "MISMATCH"),
                        "got " + got.n + " bytes md5 " + gotMd5 + ", expected " + expBytes + " bytes md5 " + expMd5);

                t = System.nanoTime();
                final long[] seen = {0};
                step("pgjdbc round " + rnd + " select", STEP_SECONDS, () -> seen[0] + " rows read");
                long n = 0, sumG = 0, sumPad = 0;
                String lastH = null;
                try (Statement st = c.createStatement();
                     ResultSet rs = st.executeQuery(SELECT_SQL)) {
                    while (rs.next()) {
                        n++;
                        seen[0] = n;
                        sumG += rs.getLong(1);
                        lastH = rs.getString(2);
                        sumPad += rs.getString(3).length();
                    }
                }
                clear();
                err(String.format("round %d select %.2f s", rnd, (System.nanoTime() - t) / 1e9));
                ok = n == N_ROWS && sumG == expSumG && sumPad == expSumPad && expLastH.equals(lastH);
                check(ok, "round " + rnd + " select " + (ok ? "ok" : "MISMATCH"),
                        "got rows=" + n + " sum g=" + sumG + " sum len(pad)=" + sumPad + " last md5=" + lastH
                                + ", expected " + N_ROWS + " " + expSumG + " " + expSumPad + " " + expLastH);
            }
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("SELECT 'still usable'")) {
                rs.next();
                check("still usable".equals(rs.getString(1)), "session usable after the large results", "");
            }
        }
    }

    // ---------------------------------------------------------------- application_name

    static String one(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery(sql)) {
            return rs.next() ? rs.getString(1) : null;
        }
    }

    static void appname(String adminUrl, String adminUser, String adminPassword) throws Exception {
        step("pgjdbc appname", 60, null);
        Properties extra = new Properties();
        extra.setProperty("ApplicationName", "myapp");
        Properties adminProps = new Properties();
        adminProps.setProperty("user", adminUser);
        adminProps.setProperty("password", adminPassword);
        try (Connection c = connect(extra);
             Connection admin = DriverManager.getConnection(adminUrl, adminProps)) {
            p("connected");
            String pid = one(c, "SELECT pg_backend_pid()");
            PGConnection pg = c.unwrap(PGConnection.class);
            check(pid.equals(Integer.toString(pg.getBackendPID())),
                    "backend_pid matches pg_backend_pid(): " + pid.equals(Integer.toString(pg.getBackendPID())), "");
            String[][] phases = {{"startup", "myapp"}, {"after SET", "other"}};
            for (String[] ph : phases) {
                String phase = ph[0], expect = ph[1];
                if (phase.equals("after SET")) {
                    try (Statement st = c.createStatement()) {
                        st.execute("SET application_name = 'other'");
                    }
                }
                String show = one(c, "SHOW application_name");
                check(expect.equals(show), phase + " SHOW application_name: " + show, "");
                String ps = pg.getParameterStatus("application_name");
                check(expect.equals(ps), phase + " parameter_status application_name: " + ps, "");
                String ci = c.getClientInfo("ApplicationName");
                check(expect.equals(ci), phase + " getClientInfo ApplicationName: " + ci, "");
                String up;
                try (PreparedStatement st = admin.prepareStatement(
                        "SELECT application_name FROM pg_stat_activity WHERE pid = ?")) {
                    st.setInt(1, Integer.parseInt(pid));
                    try (ResultSet rs = st.executeQuery()) {
                        up = rs.next() ? rs.getString(1) : "<no pg_stat_activity row for the session's backend>";
                    }
                }
                p(phase + " pg_stat_activity application_name: " + up);
            }
        }
        clear();
    }
}
