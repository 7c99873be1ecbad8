//! Print the classification of each argument (or of stdin when there is none).
//!
//! `cargo run -p airlock-sql --example classify -- "SELECT 1; DELETE FROM t"`

use std::io::Read;

fn main() {
    let mut inputs: Vec<String> = std::env::args().skip(1).collect();
    if inputs.is_empty() {
        let mut s = String::new();
        if std::io::stdin().read_to_string(&mut s).is_ok() {
            inputs.push(s);
        }
    }
    for sql in inputs {
        println!("{sql}\n  => {:?}", airlock_sql::classify(&sql));
    }
}
