//! Where the integration tests keep their executions: a SQLite file in a temporary directory,
//! and, with the `postgres` feature and a server (`FLUX_TEST_POSTGRES_URL`, which
//! `.ci/postgres start` sets), a PostgreSQL database of its own. A test that takes a store runs
//! on each [`Place`] of [`places`]: one test, every store.

use std::path::PathBuf;

use flux::{Durability, Engine};

/// Where one test's executions live; [`Place::open`] opens an engine on it, and opening it
/// again is what a restarted process does. Dropped, it removes its file or database.
pub struct Place {
    name: &'static str,
    kind: Kind,
}

enum Kind {
    Sqlite(tempfile::TempDir),
    /// The database, and a home for the engine's key file and file outputs.
    #[cfg(feature = "postgres")]
    Postgres(postgres::Database, tempfile::TempDir),
}

impl std::fmt::Debug for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Place {
    /// A SQLite file in a new temporary directory.
    pub fn sqlite() -> Place {
        Place { name: "sqlite", kind: Kind::Sqlite(tempfile::tempdir().expect("a temporary directory")) }
    }

    /// Its name: `sqlite` or `postgres`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What `Engine::open` takes for it: the file's path or the database's URL.
    pub fn location(&self) -> PathBuf {
        match &self.kind {
            Kind::Sqlite(dir) => dir.path().join("flux.db"),
            #[cfg(feature = "postgres")]
            Kind::Postgres(db, _) => PathBuf::from(db.url()),
        }
    }

    /// What `FLUX_DATABASE_URL` takes for it, for a process of its own: `sqlite://{path}` or
    /// the database's URL.
    pub fn database_url(&self) -> String {
        match &self.kind {
            Kind::Sqlite(dir) => format!("sqlite://{}", dir.path().join("flux.db").display()),
            #[cfg(feature = "postgres")]
            Kind::Postgres(db, _) => db.url(),
        }
    }

    /// A new engine on it (default durability).
    pub fn open(&self) -> Engine {
        self.open_with(Durability::Default)
    }

    /// A new engine on it with `durability`.
    pub fn open_with(&self, durability: Durability) -> Engine {
        let opened = match &self.kind {
            Kind::Sqlite(_) => Engine::open_with(self.location(), durability),
            // Its home in the place's own directory, not the working directory's `.flux`.
            #[cfg(feature = "postgres")]
            Kind::Postgres(db, home) => {
                Engine::builder().postgres(db.url()).home(home.path()).durability(durability).build()
            }
        };
        opened.unwrap_or_else(|e| panic!("{self}: cannot open: {e}"))
    }
}

/// A place of each store the tests run on: SQLite always, PostgreSQL when there is a server.
pub fn places() -> Vec<Place> {
    #[allow(unused_mut)]
    let mut all = vec![Place::sqlite()];
    #[cfg(feature = "postgres")]
    if let Some(server) = postgres::server() {
        let home = tempfile::tempdir().expect("a temporary directory");
        all.push(Place { name: "postgres", kind: Kind::Postgres(postgres::Database::new(&server), home) });
    }
    all
}

#[cfg(feature = "postgres")]
pub mod postgres {
    //! The test server: its URL, databases of its own for tests, SQL on it.

    use std::sync::atomic::{AtomicU32, Ordering};

    /// The test server's URL (`FLUX_TEST_POSTGRES_URL`); `None`, said once past the test
    /// harness's capture, when there is none. With `FLUX_TEST_POSTGRES_REQUIRED` set (as
    /// `.ci/run` sets it) a missing server is a failure instead.
    pub fn server() -> Option<String> {
        if let Some(url) = std::env::var("FLUX_TEST_POSTGRES_URL").ok().filter(|u| !u.is_empty()) {
            return Some(url);
        }
        assert!(
            std::env::var_os("FLUX_TEST_POSTGRES_REQUIRED").is_none(),
            "FLUX_TEST_POSTGRES_URL is not set, and FLUX_TEST_POSTGRES_REQUIRED says the PostgreSQL tests must run"
        );
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: the PostgreSQL tests need a server; `eval \"$(.ci/postgres start)\"` starts one and sets \
                 FLUX_TEST_POSTGRES_URL"
            );
        });
        None
    }

    /// Runs `sql` on the database at `url`, on a thread and runtime of its own (callers may be
    /// inside a runtime).
    pub fn execute(url: &str, sql: &str) {
        let (url, sql) = (url.to_string(), sql.to_string());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let (client, connection) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("the test server answers");
                tokio::spawn(connection);
                client.batch_execute(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            });
        })
        .join()
        .expect("the SQL ran");
    }

    /// A new database of the test server, dropped (its connections closed) when this goes.
    pub struct Database {
        server: String,
        name: String,
    }

    impl Database {
        /// Creates it.
        pub fn new(server: &str) -> Database {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let name = format!("flux_t_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
            execute(server, &format!("CREATE DATABASE {name}"));
            Database { server: server.to_string(), name }
        }

        /// Its URL: the server's, naming this database.
        pub fn url(&self) -> String {
            let base = self.server.rsplit_once('/').map_or(self.server.as_str(), |(base, _)| base);
            format!("{base}/{}", self.name)
        }
    }

    impl Drop for Database {
        fn drop(&mut self) {
            execute(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}
