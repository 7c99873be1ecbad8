//! Capability and server status flags.

/// `CLIENT_LONG_PASSWORD` (MariaDB: `CLIENT_MYSQL`, set by servers that are
/// not MariaDB and by clients that do not speak MariaDB's extensions).
pub const LONG_PASSWORD: u32 = 1;
/// `CLIENT_FOUND_ROWS`: affected rows count matched rows.
pub const FOUND_ROWS: u32 = 1 << 1;
/// `CLIENT_LONG_FLAG`.
pub const LONG_FLAG: u32 = 1 << 2;
/// `CLIENT_CONNECT_WITH_DB`: the handshake response names a schema.
pub const CONNECT_WITH_DB: u32 = 1 << 3;
/// `CLIENT_NO_SCHEMA`.
pub const NO_SCHEMA: u32 = 1 << 4;
/// `CLIENT_COMPRESS` (not offered: the relay does not decompress).
pub const COMPRESS: u32 = 1 << 5;
/// `CLIENT_ODBC`.
pub const ODBC: u32 = 1 << 6;
/// `CLIENT_LOCAL_FILES`: `LOAD DATA LOCAL`.
pub const LOCAL_FILES: u32 = 1 << 7;
/// `CLIENT_IGNORE_SPACE`.
pub const IGNORE_SPACE: u32 = 1 << 8;
/// `CLIENT_PROTOCOL_41`.
pub const PROTOCOL_41: u32 = 1 << 9;
/// `CLIENT_INTERACTIVE`.
pub const INTERACTIVE: u32 = 1 << 10;
/// `CLIENT_SSL`.
pub const SSL: u32 = 1 << 11;
/// `CLIENT_IGNORE_SIGPIPE`.
pub const IGNORE_SIGPIPE: u32 = 1 << 12;
/// `CLIENT_TRANSACTIONS`.
pub const TRANSACTIONS: u32 = 1 << 13;
/// `CLIENT_SECURE_CONNECTION` (4.1 authentication).
pub const SECURE_CONNECTION: u32 = 1 << 15;
/// `CLIENT_MULTI_STATEMENTS`.
pub const MULTI_STATEMENTS: u32 = 1 << 16;
/// `CLIENT_MULTI_RESULTS`.
pub const MULTI_RESULTS: u32 = 1 << 17;
/// `CLIENT_PS_MULTI_RESULTS`.
pub const PS_MULTI_RESULTS: u32 = 1 << 18;
/// `CLIENT_PLUGIN_AUTH`.
pub const PLUGIN_AUTH: u32 = 1 << 19;
/// `CLIENT_CONNECT_ATTRS`.
pub const CONNECT_ATTRS: u32 = 1 << 20;
/// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`.
pub const PLUGIN_AUTH_LENENC: u32 = 1 << 21;
/// `CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS`.
pub const EXPIRED_PASSWORDS: u32 = 1 << 22;
/// `CLIENT_SESSION_TRACK`.
pub const SESSION_TRACK: u32 = 1 << 23;
/// `CLIENT_DEPRECATE_EOF`: result sets end with an OK packet, no EOF.
pub const DEPRECATE_EOF: u32 = 1 << 24;
/// `CLIENT_OPTIONAL_RESULTSET_METADATA` (not offered).
pub const OPTIONAL_METADATA: u32 = 1 << 25;
/// `CLIENT_ZSTD_COMPRESSION_ALGORITHM` (not offered).
pub const ZSTD: u32 = 1 << 26;
/// `CLIENT_QUERY_ATTRIBUTES` (not offered: MariaDB has none).
pub const QUERY_ATTRIBUTES: u32 = 1 << 27;

/// What the proxy offers clients: everything it relays faithfully.
/// Compression, optional metadata and query attributes change packet
/// shapes the relay reads, so they are not offered; SSL is added when TLS
/// is configured.
pub const OFFERED: u32 = LONG_PASSWORD
    | FOUND_ROWS
    | LONG_FLAG
    | CONNECT_WITH_DB
    | NO_SCHEMA
    | ODBC
    | LOCAL_FILES
    | IGNORE_SPACE
    | PROTOCOL_41
    | INTERACTIVE
    | IGNORE_SIGPIPE
    | TRANSACTIONS
    | SECURE_CONNECTION
    | MULTI_STATEMENTS
    | MULTI_RESULTS
    | PS_MULTI_RESULTS
    | PLUGIN_AUTH
    | CONNECT_ATTRS
    | PLUGIN_AUTH_LENENC
    | EXPIRED_PASSWORDS
    | SESSION_TRACK
    | DEPRECATE_EOF;

/// Flags that change what the server sends: the upstream session must be
/// opened with exactly the client's choice of these.
pub const SHAPING: u32 = FOUND_ROWS
    | PROTOCOL_41
    | MULTI_STATEMENTS
    | MULTI_RESULTS
    | PS_MULTI_RESULTS
    | SESSION_TRACK
    | DEPRECATE_EOF
    | LOCAL_FILES
    | LONG_FLAG
    | IGNORE_SPACE
    | ODBC
    | INTERACTIVE
    | TRANSACTIONS;

/// `SERVER_STATUS_IN_TRANS`.
pub const STATUS_IN_TRANS: u16 = 1;
/// `SERVER_STATUS_AUTOCOMMIT`.
pub const STATUS_AUTOCOMMIT: u16 = 1 << 1;
/// `SERVER_MORE_RESULTS_EXISTS`.
pub const STATUS_MORE_RESULTS: u16 = 1 << 3;
/// `SERVER_STATUS_CURSOR_EXISTS`.
pub const STATUS_CURSOR_EXISTS: u16 = 1 << 6;
/// `SERVER_STATUS_LAST_ROW_SENT`.
pub const STATUS_LAST_ROW_SENT: u16 = 1 << 7;
/// `SERVER_STATUS_IN_TRANS_READONLY`.
pub const STATUS_IN_TRANS_READONLY: u16 = 1 << 13;

/// MariaDB's `MARIADB_CLIENT_PROGRESS` (extended capability bit 0; not
/// offered: progress reports are 0xFF packets in the middle of a response).
pub const MARIADB_PROGRESS: u32 = 1;
/// MariaDB's `MARIADB_CLIENT_STMT_BULK_OPERATIONS`.
pub const MARIADB_BULK: u32 = 1 << 2;
/// MariaDB's `MARIADB_CLIENT_EXTENDED_METADATA` (data type names such as
/// `json` in column definitions).
pub const MARIADB_EXTENDED_METADATA: u32 = 1 << 3;
/// MariaDB's `MARIADB_CLIENT_CACHE_METADATA` (not offered: it drops column
/// definitions from execute responses).
pub const MARIADB_CACHE_METADATA: u32 = 1 << 4;

/// MariaDB extended capabilities the proxy relays faithfully.
pub const MARIADB_OFFERED: u32 = MARIADB_BULK | MARIADB_EXTENDED_METADATA;
