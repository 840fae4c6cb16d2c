//! Test databases: a fresh SQLite file per test, or the PostgreSQL and MariaDB databases named
//! by CONVSTATE_TEST_PG_URL and CONVSTATE_TEST_MARIADB_URL (shared; tests use unique user ids).

#![allow(dead_code)]

use std::io::Write;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use convstate::Database;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across tests, processes and runs: prefix-pid-nanos-counter.
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// An open test database; removes its SQLite files when dropped.
pub struct TestDb {
    db: Option<Database>,
    files: Vec<PathBuf>,
    pub backend: &'static str,
    pub url: String,
}

impl Deref for TestDb {
    type Target = Database;
    fn deref(&self) -> &Database {
        self.db.as_ref().expect("open")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        drop(self.db.take()); // close before removing the files
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

pub fn sqlite_url() -> (String, Vec<PathBuf>) {
    let path = std::env::temp_dir().join(format!("{}.db", unique("convstate-rust-test")));
    let s = path.to_str().expect("UTF-8 temp dir").to_owned();
    let files = vec![path.clone(), PathBuf::from(format!("{s}-wal")), PathBuf::from(format!("{s}-shm"))];
    // An absolute path gives "sqlite3:///tmp/…".
    (format!("sqlite3://{s}"), files)
}

pub fn sqlite() -> TestDb {
    let (url, files) = sqlite_url();
    let db = Database::open(&url).unwrap_or_else(|e| panic!("open {url}: {e}"));
    TestDb { db: Some(db), files, backend: "sqlite", url }
}

/// A server's test URL from `var`, or None (the test is skipped) when it is unset. With
/// `require`=1 a missing URL fails the test instead.
fn server_url(test: &str, module: &str, var: &str, require: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var(require).as_deref() == Ok("1") {
                panic!("{require}=1 but {var} is not set");
            }
            // Written to the stderr handle directly (libtest captures println!/eprintln!).
            // Each skipped test still reports "ok".
            let _ = writeln!(std::io::stderr(), "\nSKIPPED: {module}::{test} — {var} is not set");
            None
        }
    }
}

/// The PostgreSQL URL (CONVSTATE_TEST_PG_URL; CONVSTATE_REQUIRE_PG=1 makes it mandatory).
pub fn postgres_url(test: &str) -> Option<String> {
    server_url(test, "postgres", "CONVSTATE_TEST_PG_URL", "CONVSTATE_REQUIRE_PG")
}

/// The MariaDB URL (CONVSTATE_TEST_MARIADB_URL; CONVSTATE_REQUIRE_MARIADB=1 makes it mandatory).
pub fn mariadb_url(test: &str) -> Option<String> {
    server_url(test, "mariadb", "CONVSTATE_TEST_MARIADB_URL", "CONVSTATE_REQUIRE_MARIADB")
}

pub fn postgres(test: &str) -> Option<TestDb> {
    let url = postgres_url(test)?;
    let db = Database::open(&url).unwrap_or_else(|e| panic!("open PostgreSQL: {e}"));
    Some(TestDb { db: Some(db), files: Vec::new(), backend: "postgres", url })
}

pub fn mariadb(test: &str) -> Option<TestDb> {
    let url = mariadb_url(test)?;
    let db = Database::open(&url).unwrap_or_else(|e| panic!("open MariaDB: {e}"));
    Some(TestDb { db: Some(db), files: Vec::new(), backend: "mariadb", url })
}

/// Runs each named test function (taking a TestDb) on SQLite, PostgreSQL and MariaDB.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::common::sqlite()); } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                if let Some(db) = super::common::postgres(stringify!($name)) { super::$name(db); }
            } )*
        }
        mod mariadb {
            $( #[test] fn $name() {
                if let Some(db) = super::common::mariadb(stringify!($name)) { super::$name(db); }
            } )*
        }
    };
}
