//! Database test servers: PostgreSQL and MariaDB in a temporary directory, on a free port of
//! 127.0.0.1, with password authentication, sample data and checksums of it.
//!
//! Both implement [`DatabaseServer`], so a test can run against either:
//!
//! ```no_run
//! use stowaway_e2e::databases::{DatabaseServer, Postgres};
//!
//! let Some(pg) = Postgres::start() else { return };
//! pg.create_sample("shop", 1_000);
//! let before = pg.checksums("shop");
//! // ... back up, drop, restore ...
//! assert_eq!(pg.checksums("shop"), before);
//! ```
//!
//! When the tests run as root, the PostgreSQL programs run as the `postgres` system user
//! (PostgreSQL refuses to run as root) in a temporary directory owned by it, and `mariadbd`
//! runs with `--user=root`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use crate::servers::{Server, env_path, on_path, program_or_skip, skip};

/// Directory of the PostgreSQL server programs `initdb` and `postgres` (default:
/// `/usr/lib/postgresql/15/bin`, then the directory of `initdb` on `$PATH`).
pub const PG_BINDIR_ENV: &str = "STOWAWAY_PG_BINDIR";
/// Path of `mariadbd` (default: `/usr/sbin/mariadbd`, then `$PATH`).
pub const MARIADBD_ENV: &str = "STOWAWAY_MARIADBD";
/// Path of `mariadb-install-db` (default: `/usr/bin/mariadb-install-db`, then `$PATH`).
pub const MARIADB_INSTALL_DB_ENV: &str = "STOWAWAY_MARIADB_INSTALL_DB";

const DEFAULT_PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";
const DEFAULT_PSQL: &str = "/usr/bin/psql";
const DEFAULT_MARIADBD: &str = "/usr/sbin/mariadbd";
const DEFAULT_MARIADB_INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
const DEFAULT_MARIADB: &str = "/usr/bin/mariadb";

/// The password of every account the servers are set up with.
const PASSWORD: &str = "stowaway-db-secret";
/// How long PostgreSQL gets to shut down (fast shutdown) before it is killed.
const PG_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What tests need from a database server, whichever it is.
pub trait DatabaseServer: Sized {
    /// Starts a server, or returns `None` (loudly) when it is not installed.
    fn start() -> Option<Self>;
    /// The address the server listens on (`127.0.0.1`).
    fn host(&self) -> &str {
        "127.0.0.1"
    }
    /// The TCP port it listens on.
    fn port(&self) -> u16;
    /// The account with all privileges.
    fn user(&self) -> &str;
    /// The password of [`user`](Self::user) (and of `root` on MariaDB).
    fn password(&self) -> &str;
    /// Runs the statements `sql` in database `db` with the server's command-line client and
    /// returns the rows it printed: one a line, without headers, fields separated by `|`
    /// (PostgreSQL) or a tab (MariaDB). Panics with the client's errors when it fails.
    fn sql(&self, db: &str, sql: &str) -> String;
    /// Creates database `db` with sample tables of many column types, `rows` (at least 1) rows
    /// in each large table (20 000 rows are 10-20 MB), indexes, a view and a few objects
    /// that only one kind of server has. The data is the same each time.
    fn create_sample(&self, db: &str, rows: usize);
    /// For every base table of `db`: its row count and an MD5 of its rows in primary-key
    /// order, keyed by the table's name (PostgreSQL: `schema.table`, and also one entry per
    /// large object). Equal maps mean equal data.
    fn checksums(&self, db: &str) -> BTreeMap<String, String>;
    /// The user databases (not the system ones), sorted.
    fn databases(&self) -> Vec<String>;
    /// Drops database `db` if it exists.
    fn drop_database(&self, db: &str);
}

/// A PostgreSQL server (`initdb` and `postgres` from [`PG_BINDIR_ENV`]) with the superuser
/// `postgres`, scram-sha-256 password authentication and `fsync` off.
#[derive(Debug)]
pub struct Postgres {
    server: Server,
    bindir: PathBuf,
    psql: PathBuf,
    password: String,
    /// Data directory and socket; removed after the server has stopped (fields drop in
    /// order).
    dir: tempfile::TempDir,
}

impl Postgres {
    /// The directory of the server programs (`initdb`, `postgres`, `pg_dump`, ...).
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server (its log).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Runs `sql` in database `db` through `psql -X -q -v ON_ERROR_STOP=1 -tA` over TCP and
    /// returns its output; panics with its errors when it fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let command = psql_command(&self.psql, self.port(), &self.password, db);
        run(command, sql).unwrap_or_else(|e| panic!("psql on database {db}: {e}\nSQL:\n{sql}"))
    }
}

impl DatabaseServer for Postgres {
    fn start() -> Option<Postgres> {
        let Some(bindir) = postgres_bindir() else {
            return skip(&format!(
                "PostgreSQL server programs (initdb, postgres) not found (set {PG_BINDIR_ENV} \
                 or run `bash scripts/servers.sh install`)"
            ));
        };
        let psql = client_or_skip("psql", &[DEFAULT_PSQL.into(), bindir.join("psql")])?;
        let account = if rustix::process::geteuid().is_root() {
            match system_account("postgres") {
                Ok(account) => Some(account),
                Err(e) => {
                    return skip(&format!(
                        "running as root, which PostgreSQL refuses, and there is no `postgres` \
                         user to run it as ({e})"
                    ));
                }
            }
        } else {
            None
        };

        let dir = tempfile::tempdir().expect("temporary directory for PostgreSQL");
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, PASSWORD).expect("writing the PostgreSQL password file");
        if let Some((uid, gid)) = account {
            for path in [dir.path(), &password_file] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("giving {} to postgres: {e}", path.display()));
            }
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .arg("--pgdata")
            .arg(&data)
            .args([
                "--username=postgres",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", password_file.display()))
            .current_dir(dir.path());
        as_account(&mut initdb, account);
        run(initdb, "").unwrap_or_else(|e| panic!("initdb: {e}"));

        let postgres = bindir.join("postgres");
        let server = Server::launch(
            "postgres",
            |port, _| {
                let mut command = Command::new(&postgres);
                command
                    .arg("-D")
                    .arg(&data)
                    .arg("-k")
                    .arg(dir.path())
                    .args(["-p", &port.to_string()])
                    .args(["-c", "listen_addresses=127.0.0.1"])
                    .args(["-c", "fsync=off"])
                    .args(["-c", "full_page_writes=off"])
                    .args(["-c", "synchronous_commit=off"])
                    .current_dir(dir.path());
                as_account(&mut command, account);
                command
            },
            |port| run(psql_command(&psql, port, PASSWORD, "postgres"), "SELECT 1").is_ok(),
        );
        Some(Postgres {
            server,
            bindir,
            psql,
            password: PASSWORD.to_owned(),
            dir,
        })
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn user(&self) -> &str {
        "postgres"
    }

    fn password(&self) -> &str {
        &self.password
    }

    fn sql(&self, db: &str, sql: &str) -> String {
        self.psql(db, sql)
    }

    fn create_sample(&self, db: &str, rows: usize) {
        assert!(rows > 0, "a sample needs at least one row");
        self.psql("postgres", &format!("CREATE DATABASE {}", pg_ident(db)));
        self.psql(db, &PG_SAMPLE.replace("{rows}", &rows.to_string()));
    }

    fn checksums(&self, db: &str) -> BTreeMap<String, String> {
        parse_checksums(&self.psql(db, PG_CHECKSUMS), '|')
    }

    fn databases(&self) -> Vec<String> {
        lines(&self.psql(
            "postgres",
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' \
             ORDER BY datname",
        ))
    }

    fn drop_database(&self, db: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg_ident(db)),
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A fast shutdown, so that the server's children and shared memory go with it.
        self.server.stop(Signal::INT, PG_SHUTDOWN_GRACE);
    }
}

/// A MariaDB server (`mariadbd`, set up by `mariadb-install-db`) with the account
/// `stowaway` (`@'%'` and `@'localhost'`, all privileges) and `root@localhost`, both with
/// [`password`](DatabaseServer::password).
#[derive(Debug)]
pub struct MariaDb {
    server: Server,
    client: PathBuf,
    password: String,
    /// Data directory and socket; removed after the server was killed (fields drop in order).
    dir: tempfile::TempDir,
}

impl MariaDb {
    /// The server's Unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mariadb.sock")
    }

    /// The server (its log).
    pub fn server(&self) -> &Server {
        &self.server
    }
}

impl DatabaseServer for MariaDb {
    fn start() -> Option<MariaDb> {
        let mariadbd = program_or_skip(MARIADBD_ENV, DEFAULT_MARIADBD, "mariadbd")?;
        let install_db = program_or_skip(
            MARIADB_INSTALL_DB_ENV,
            DEFAULT_MARIADB_INSTALL_DB,
            "mariadb-install-db",
        )?;
        let client = client_or_skip("mariadb", &[DEFAULT_MARIADB.into()])?;
        // mariadbd runs as root only when told so.
        let user: &[&str] = if rustix::process::geteuid().is_root() {
            &["--user=root"]
        } else {
            &[]
        };

        let dir = tempfile::tempdir().expect("temporary directory for MariaDB");
        let data = dir.path().join("data");
        let accounts = dir.path().join("accounts.sql");
        // Run by the bootstrap server, which loads the grant tables only when flushed.
        std::fs::write(
            &accounts,
            format!(
                "FLUSH PRIVILEGES;\n\
                 CREATE USER 'stowaway'@'%' IDENTIFIED BY '{PASSWORD}';\n\
                 CREATE USER 'stowaway'@'localhost' IDENTIFIED BY '{PASSWORD}';\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'stowaway'@'%' WITH GRANT OPTION;\n\
                 GRANT ALL PRIVILEGES ON *.* TO 'stowaway'@'localhost' WITH GRANT OPTION;\n\
                 ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}';\n"
            ),
        )
        .expect("writing the MariaDB accounts file");
        // A temporary directory of its own: servers set up side by side in a shared /tmp
        // collide on the names of their temporary tables.
        let tmpdir = dir.path().join("tmp");
        std::fs::create_dir_all(&tmpdir).expect("creating the MariaDB tmpdir");
        let mut install = Command::new(&install_db);
        install
            .arg("--no-defaults")
            .args(user)
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmpdir.display()))
            .arg(format!("--extra-file={}", accounts.display()))
            .args(["--skip-test-db", "--skip-name-resolve"])
            .current_dir(dir.path());
        run(install, "").unwrap_or_else(|e| panic!("mariadb-install-db: {e}"));

        let server = Server::launch(
            "mariadbd",
            |port, _| {
                let mut command = Command::new(&mariadbd);
                command
                    .arg("--no-defaults")
                    .args(user)
                    .arg(format!("--datadir={}", data.display()))
                    .arg(format!("--tmpdir={}", tmpdir.display()))
                    .arg(format!(
                        "--socket={}",
                        dir.path().join("mariadb.sock").display()
                    ))
                    .arg(format!(
                        "--pid-file={}",
                        dir.path().join("mariadbd.pid").display()
                    ))
                    .arg(format!("--port={port}"))
                    .args([
                        "--bind-address=127.0.0.1",
                        "--skip-name-resolve",
                        "--character-set-server=utf8mb4",
                        "--collation-server=utf8mb4_unicode_ci",
                        "--innodb-flush-log-at-trx-commit=0",
                    ])
                    .current_dir(dir.path());
                command
            },
            |port| run(mariadb_command(&client, port, PASSWORD, ""), "SELECT 1").is_ok(),
        );
        Some(MariaDb {
            server,
            client,
            password: PASSWORD.to_owned(),
            dir,
        })
    }

    fn port(&self) -> u16 {
        self.server.port()
    }

    fn user(&self) -> &str {
        "stowaway"
    }

    fn password(&self) -> &str {
        &self.password
    }

    /// Through `mariadb -N -B` over TCP; an empty `db` selects no database.
    fn sql(&self, db: &str, sql: &str) -> String {
        let command = mariadb_command(&self.client, self.port(), &self.password, db);
        run(command, sql).unwrap_or_else(|e| panic!("mariadb on database {db:?}: {e}\nSQL:\n{sql}"))
    }

    fn create_sample(&self, db: &str, rows: usize) {
        assert!(rows > 0, "a sample needs at least one row");
        let db = mariadb_ident(db);
        self.sql(
            "",
            &format!(
                "CREATE DATABASE {db} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n\
                 USE {db};\n{}",
                MARIADB_SAMPLE.replace("{rows}", &rows.to_string())
            ),
        );
    }

    fn checksums(&self, db: &str) -> BTreeMap<String, String> {
        parse_checksums(&self.sql(db, MARIADB_CHECKSUMS), '\t')
    }

    fn databases(&self) -> Vec<String> {
        lines(&self.sql(
            "",
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN \
             ('information_schema', 'mysql', 'performance_schema', 'sys') ORDER BY SCHEMA_NAME",
        ))
    }

    fn drop_database(&self, db: &str) {
        self.sql(
            "",
            &format!("DROP DATABASE IF EXISTS {}", mariadb_ident(db)),
        );
    }
}

/// The directory with `initdb` and `postgres`: `$STOWAWAY_PG_BINDIR`, else the Debian
/// default, else where `initdb` is on `$PATH`.
fn postgres_bindir() -> Option<PathBuf> {
    let complete = |dir: &PathBuf| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = env_path(PG_BINDIR_ENV) {
        return Some(dir).filter(complete);
    }
    Some(PathBuf::from(DEFAULT_PG_BINDIR))
        .filter(complete)
        .or_else(|| {
            on_path("initdb")
                .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
                .filter(complete)
        })
}

/// A client program: the first of `candidates` that exists, else `name` on `$PATH`, else
/// `None` after a loud message.
fn client_or_skip(name: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .or_else(|| on_path(name))
        .or_else(|| {
            skip(&format!(
                "the {name} client is not found (run `bash scripts/servers.sh install`)"
            ))
        })
}

/// The user and group id of the system user `name`.
fn system_account(name: &str) -> Result<(u32, u32), String> {
    let mut getent = Command::new("getent");
    getent.args(["passwd", name]);
    let entry = run(getent, "")?;
    let mut fields = entry.split(':').skip(2);
    let mut id = |what: &str| {
        fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("no {what} in the passwd entry {entry:?}"))
    };
    Ok((id("uid")?, id("gid")?))
}

/// Makes `command` run as `account` (user and group id), when there is one.
fn as_account(command: &mut Command, account: Option<(u32, u32)>) {
    if let Some((uid, gid)) = account {
        command.uid(uid).gid(gid);
    }
}

/// `psql` on 127.0.0.1:`port`, reading SQL from its standard input.
fn psql_command(psql: &Path, port: u16, password: &str, db: &str) -> Command {
    let mut command = Command::new(psql);
    command
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-f",
            "-",
        ])
        .env("PGPASSWORD", password)
        .env("PGCLIENTENCODING", "UTF8")
        .env("PGCONNECT_TIMEOUT", "10");
    command
}

/// `mariadb` on 127.0.0.1:`port` as `stowaway`, reading SQL from its standard input.
fn mariadb_command(client: &Path, port: u16, password: &str, db: &str) -> Command {
    let mut command = Command::new(client);
    command
        .args(["--no-defaults", "--protocol=TCP", "-h", "127.0.0.1"])
        .arg(format!("--port={port}"))
        .args([
            "-u",
            "stowaway",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
        ])
        .args(["--connect-timeout=10"])
        .env("MYSQL_PWD", password);
    if !db.is_empty() {
        command.arg(db);
    }
    command
}

/// Runs `command` with `input` on its standard input; its standard output without the
/// final newline, or what went wrong.
fn run(mut command: Command, input: &str) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Written beside the reading, so that neither side can fill a pipe and wait forever.
    let output = std::thread::scope(|scope| {
        scope.spawn(move || stdin.write_all(input.as_bytes()));
        child.wait_with_output()
    })
    .map_err(|e| format!("running {program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_owned())
}

/// The non-empty lines of `text`.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Lines `name<separator>checksum` as a map (the name may contain the separator).
fn parse_checksums(text: &str, separator: char) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.rsplit_once(separator))
        .map(|(name, sum)| (name.to_owned(), sum.to_owned()))
        .collect()
}

/// `name` as a PostgreSQL identifier.
fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `name` as a MariaDB identifier.
fn mariadb_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The PostgreSQL sample (`{rows}` is replaced): tables in two schemas, one without a
/// primary key, most column types, an index, a view and two large objects with fixed ids.
const PG_SAMPLE: &str = r#"
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email varchar(120),
    balance numeric(14, 2),
    score double precision,
    active boolean,
    tags text[],
    created_at timestamptz NOT NULL,
    birthday date,
    profile jsonb
);
INSERT INTO customers
SELECT i,
       'Kundin ' || i || ' Zoë Ñandú – 東京 🚀',
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'user' || i || '@example.com' END,
       round((i * 1234.567) % 1000000, 2) - 5000,
       CASE WHEN i % 5 = 0 THEN NULL ELSE i / 7.0::float8 END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE i % 3 <> 0 END,
       ARRAY['tag' || i % 10, 'ü'],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes 3 seconds',
       date '1950-01-01' + i % 20000,
       jsonb_build_object('tier', i % 4, 'note', 'naïve “quotes”',
                          'nested', jsonb_build_object('n', i, 'nil', NULL))
FROM generate_series(1, {rows}) AS i;
CREATE INDEX customers_email_idx ON customers (email);

CREATE TABLE documents (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    title text,
    body text,
    payload bytea,
    meta json,
    digest uuid,
    updated_at timestamp
);
INSERT INTO documents (customer_id, title, body, payload, meta, digest, updated_at)
SELECT i,
       'Dokument Nr. ' || i,
       repeat('Lorem ipsum dolor sit amet, ' || i || ' ', 6),
       '\x00'::bytea || decode(repeat(md5(i::text), 4), 'hex') || '\xff00fe'::bytea,
       CASE WHEN i % 9 = 0 THEN NULL ELSE json_build_object('pages', i % 50, 'lang', 'de') END,
       md5('document ' || i)::uuid,
       timestamp '2023-06-01 12:00:00' + i * interval '1 minute'
FROM generate_series(1, {rows}) AS i;

CREATE SCHEMA audit;
CREATE TABLE audit.events (
    document_id bigint NOT NULL,
    seq smallint NOT NULL,
    kind text NOT NULL,
    at timestamptz,
    PRIMARY KEY (document_id, seq)
);
INSERT INTO audit.events
SELECT d, s, CASE s WHEN 1 THEN 'created' ELSE 'edited' END,
       timestamptz '2024-02-01 00:00:00+00' + (d * 2 + s) * interval '1 second'
FROM generate_series(1, {rows}) AS d, generate_series(1, 2) AS s;

CREATE TABLE settings (name text, value text);
INSERT INTO settings VALUES ('theme', 'dark'), ('greeting', 'Grüß Gott'), ('empty', NULL);

CREATE TABLE attachments (id integer PRIMARY KEY, name text NOT NULL, content oid NOT NULL);
INSERT INTO attachments VALUES
    (1, 'all-bytes.bin', lo_from_bytea(900001, (
        SELECT decode(repeat(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY b), 1024), 'hex')
        FROM generate_series(0, 255) AS b))),
    (2, 'notiz.txt', lo_from_bytea(900002, convert_to('Grüße aus Köln', 'UTF8')));

CREATE VIEW active_customers AS SELECT id, name, email FROM customers WHERE active;
"#;

/// Checksums of every base table of the current PostgreSQL database (in primary-key order,
/// else in the order of the rows' text) and of every large object, as `name|checksum`.
const PG_CHECKSUMS: &str = r#"
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET bytea_output = 'hex';
SET extra_float_digits = 1;
SELECT format(
           'SELECT %L, format(%L, count(*), coalesce(md5(string_agg(stowaway_row::text, %L ORDER BY %s)), md5(%L))) FROM %I.%I AS stowaway_row',
           format('%s.%s', n.nspname, c.relname), '%s rows, md5 %s', '|',
           coalesce((SELECT string_agg(format('stowaway_row.%I', a.attname), ', ' ORDER BY k.ord)
                     FROM pg_index i
                     CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k (attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     WHERE i.indrelid = c.oid AND i.indisprimary),
                    'stowaway_row::text COLLATE "C"'),
           '', n.nspname, c.relname)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
ORDER BY n.nspname, c.relname
\gexec
SELECT 'large object ' || oid, format('%s bytes, md5 %s', length(lo_get(oid)), md5(lo_get(oid)))
FROM pg_largeobject_metadata
ORDER BY oid;
"#;

/// The MariaDB sample (`{rows}` is replaced, the database is selected): tables with and
/// without primary keys, most column types, an index, a view, a function, a trigger and a
/// (disabled) event.
const MARIADB_SAMPLE: &str = r#"
SET time_zone = '+00:00';
CREATE TABLE customers (
    id INT NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    email VARCHAR(120),
    balance DECIMAL(14, 2),
    score DOUBLE,
    active BOOLEAN,
    created_at DATETIME(6) NOT NULL,
    birthday DATE,
    profile JSON,
    KEY customers_email_idx (email)
);
INSERT INTO customers
SELECT seq,
       CONCAT('Kundin ', seq, ' Zoë Ñandú – 東京 🚀'),
       IF(seq % 7 = 0, NULL, CONCAT('user', seq, '@example.com')),
       ROUND(MOD(seq * 1234.567, 1000000), 2) - 5000,
       IF(seq % 5 = 0, NULL, seq / 7e0),
       IF(seq % 11 = 0, NULL, seq % 3 <> 0),
       TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq * 1023 SECOND,
       DATE '1950-01-01' + INTERVAL seq % 20000 DAY,
       JSON_OBJECT('tier', seq % 4, 'note', 'naïve “quotes”',
                   'nested', JSON_OBJECT('n', seq, 'nil', NULL))
FROM seq_1_to_{rows};

CREATE TABLE documents (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    customer_id INT NOT NULL,
    title VARCHAR(200),
    body TEXT,
    payload BLOB,
    status ENUM('draft', 'published', 'archived') NOT NULL,
    updated_at TIMESTAMP NULL,
    CONSTRAINT documents_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
);
INSERT INTO documents (id, customer_id, title, body, payload, status, updated_at)
SELECT seq, seq,
       CONCAT('Dokument Nr. ', seq),
       REPEAT(CONCAT('Lorem ipsum dolor sit amet, ', seq, ' '), 6),
       CONCAT(X'00', UNHEX(REPEAT(MD5(seq), 4)), X'FF00FE'),
       ELT(1 + seq % 3, 'draft', 'published', 'archived'),
       TIMESTAMP '2023-06-01 12:00:00' + INTERVAL seq MINUTE
FROM seq_1_to_{rows};

CREATE TABLE events (
    document_id BIGINT NOT NULL,
    seq SMALLINT NOT NULL,
    kind VARCHAR(20) NOT NULL,
    at DATETIME,
    PRIMARY KEY (document_id, seq)
);
INSERT INTO events
SELECT d.seq, s.seq, IF(s.seq = 1, 'created', 'edited'),
       TIMESTAMP '2024-02-01 00:00:00' + INTERVAL d.seq * 2 + s.seq SECOND
FROM seq_1_to_{rows} AS d, seq_1_to_2 AS s;

CREATE TABLE settings (name VARCHAR(50), value TEXT);
INSERT INTO settings VALUES ('theme', 'dark'), ('greeting', 'Grüß Gott'), ('empty', NULL);

CREATE VIEW active_customers AS SELECT id, name, email FROM customers WHERE active;
CREATE FUNCTION customer_label(customer_id INT) RETURNS VARCHAR(64) DETERMINISTIC
    RETURN CONCAT('customer #', customer_id);
CREATE TRIGGER documents_title BEFORE INSERT ON documents
    FOR EACH ROW SET NEW.title = TRIM(NEW.title);
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY DISABLE
    DO DELETE FROM settings WHERE value IS NULL;
"#;

/// Checksums of every base table of the current MariaDB database (in primary-key order,
/// else in the order of the rows' bytes), as `name<tab>checksum`.
const MARIADB_CHECKSUMS: &str = r#"
SET SESSION group_concat_max_len = 4294967295, time_zone = '+00:00';
SET @checksums = (
    SELECT GROUP_CONCAT(
               CONCAT('SELECT ', QUOTE(t.TABLE_NAME),
                      ', CONCAT(COUNT(*), '' rows, md5 '', MD5(COALESCE(GROUP_CONCAT(', r.row_text,
                      ' ORDER BY ', COALESCE(k.key_columns, CONCAT('CAST(', r.row_text, ' AS BINARY)')),
                      ' SEPARATOR ''|''), ''''))) FROM `', REPLACE(t.TABLE_NAME, '`', '``'), '`')
               ORDER BY t.TABLE_NAME SEPARATOR ' UNION ALL ')
    FROM information_schema.TABLES AS t
    JOIN (SELECT TABLE_NAME,
                 CONCAT('CONCAT_WS('','', ',
                        GROUP_CONCAT(CONCAT('QUOTE(`', REPLACE(COLUMN_NAME, '`', '``'), '`)')
                                     ORDER BY ORDINAL_POSITION),
                        ')') AS row_text
          FROM information_schema.COLUMNS
          WHERE TABLE_SCHEMA = DATABASE()
          GROUP BY TABLE_NAME) AS r ON r.TABLE_NAME = t.TABLE_NAME
    LEFT JOIN (SELECT TABLE_NAME,
                      GROUP_CONCAT(CONCAT('`', REPLACE(COLUMN_NAME, '`', '``'), '`')
                                   ORDER BY SEQ_IN_INDEX) AS key_columns
               FROM information_schema.STATISTICS
               WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY'
               GROUP BY TABLE_NAME) AS k ON k.TABLE_NAME = t.TABLE_NAME
    WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED'));
SET @checksums = COALESCE(@checksums, 'SELECT 1 FROM DUAL WHERE FALSE');
PREPARE checksums FROM @checksums;
EXECUTE checksums;
DEALLOCATE PREPARE checksums;
"#;
