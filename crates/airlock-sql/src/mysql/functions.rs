//! MySQL/MariaDB built-in functions that only compute a value: calling them
//! changes nothing in the database or the session's locks. Anything else
//! (stored functions, `GET_LOCK`, `NEXTVAL`, `LOAD_FILE`, `MASTER_POS_WAIT`,
//! `SETVAL`, `RELEASE_LOCK`…) holds the statement.

/// Lower-case names of read-only built-ins.
const READ_ONLY: &[&str] = &[
    // Aggregates and windows.
    "avg", "bit_and", "bit_or", "bit_xor", "count", "group_concat", "json_arrayagg",
    "json_objectagg", "max", "min", "std", "stddev", "stddev_pop", "stddev_samp", "sum",
    "var_pop", "var_samp", "variance", "row_number", "rank", "dense_rank", "percent_rank",
    "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value",
    "median", "percentile_cont", "percentile_disc",
    // Control flow and comparison.
    "if", "ifnull", "nullif", "coalesce", "greatest", "least", "isnull", "interval",
    "nvl", "nvl2", "decode_oracle",
    // Strings.
    "ascii", "bin", "bit_length", "char", "char_length", "character_length", "concat",
    "concat_ws", "elt", "export_set", "field", "find_in_set", "format", "from_base64",
    "hex", "insert", "instr", "lcase", "left", "length", "length_b", "locate", "lower", "lpad",
    "ltrim", "make_set", "mid", "oct", "octet_length", "ord", "position", "quote",
    "regexp_instr", "regexp_like", "regexp_replace", "regexp_substr", "repeat", "replace",
    "reverse", "right", "rpad", "rtrim", "soundex", "space", "strcmp", "substr",
    "substring", "substring_index", "to_base64", "trim", "ucase", "unhex", "upper",
    "weight_string", "natural_sort_key", "sformat", "chr", "to_char",
    "collation", "charset", "coercibility", "convert", "cast",
    // Numbers.
    "abs", "acos", "asin", "atan", "atan2", "ceil", "ceiling", "conv", "cos", "cot",
    "crc32", "crc32c", "degrees", "div", "exp", "floor", "ln", "log", "log10", "log2", "mod",
    "pi", "pow", "power", "radians", "rand", "round", "sign", "sin", "sqrt", "tan",
    "truncate",
    // Dates and times.
    "adddate", "addtime", "convert_tz", "curdate", "current_date", "current_time",
    "current_timestamp", "curtime", "date", "date_add", "date_format", "date_sub",
    "datediff", "day", "dayname", "dayofmonth", "dayofweek", "dayofyear", "extract",
    "from_days", "from_unixtime", "get_format", "hour", "last_day", "localtime",
    "localtimestamp", "makedate", "maketime", "microsecond", "minute", "month",
    "monthname", "now", "period_add", "period_diff", "quarter", "sec_to_time", "second",
    "str_to_date", "subdate", "subtime", "sysdate", "time", "time_format", "time_to_sec",
    "timediff", "timestamp", "timestampadd", "timestampdiff", "to_days", "to_seconds",
    "unix_timestamp", "utc_date", "utc_time", "utc_timestamp", "week", "weekday",
    "weekofyear", "year", "yearweek", "add_months", "months_between",
    // JSON (they return values; none changes a stored document).
    "json_array", "json_array_append", "json_array_insert", "json_array_intersect",
    "json_compact", "json_contains", "json_contains_path", "json_depth", "json_detailed",
    "json_equals", "json_exists", "json_extract", "json_insert", "json_keys", "json_length",
    "json_loose", "json_merge", "json_merge_patch", "json_merge_preserve", "json_normalize",
    "json_object", "json_object_filter_keys", "json_object_to_array", "json_overlaps",
    "json_pretty", "json_query", "json_quote", "json_remove", "json_replace", "json_schema_valid",
    "json_search", "json_set", "json_type", "json_unquote", "json_valid", "json_value",
    "json_table",
    // Information about the session and server.
    "benchmark", "connection_id", "current_role", "current_user", "database", "found_rows",
    "row_count", "schema", "session_user", "system_user", "user", "version", "sleep",
    "is_free_lock", "is_used_lock", "uuid", "uuid_short", "sys_guid", "default", "values",
    "last_value", "lastval",
    // Hashing and encoding (no key material written anywhere).
    "md5", "sha", "sha1", "sha2", "compress", "uncompress", "uncompressed_length",
    "aes_encrypt", "aes_decrypt", "des_encrypt", "des_decrypt", "encode", "decode",
    "password", "old_password", "random_bytes", "kdf",
    // Network and misc.
    "inet_aton", "inet_ntoa", "inet6_aton", "inet6_ntoa", "is_ipv4", "is_ipv6",
    "is_ipv4_compat", "is_ipv4_mapped", "name_const", "bit_count", "column_get",
    "column_json", "column_list", "column_exists", "column_check", "column_create",
    "column_add", "column_delete",
    // Geometry.
    "st_astext", "st_aswkt", "st_asbinary", "st_aswkb", "st_geomfromtext", "st_geomfromwkb",
    "st_x", "st_y", "st_distance", "st_contains", "st_within", "st_intersects", "st_srid",
    "point", "linestring", "polygon",
];

/// Whether the built-in `name` (any case) only computes a value.
pub fn is_read_only(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    READ_ONLY.binary_search(&lower.as_str()).is_ok() || READ_ONLY.contains(&lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_effects_are_not_read_only() {
        for f in ["GET_LOCK", "release_lock", "release_all_locks", "nextval", "setval",
                  "load_file", "master_pos_wait", "my_stored_function", "sys_exec"] {
            assert!(!is_read_only(f), "{f}");
        }
        for f in ["COUNT", "concat", "Now", "json_set", "database"] {
            assert!(is_read_only(f), "{f}");
        }
    }
}
