//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, started with
//! `pg_ctl` on a free 127.0.0.1 port, trust authentication for the `postgres` superuser and
//! `fsync=off`. Dropping it stops the server (immediate shutdown) and removes the directory.
//!
//! Why a real server rather than a mock: the sink's guarantees rest on PostgreSQL's own
//! behaviour (binary `COPY`, `ON CONFLICT`, row locks, what a client sees when its connection
//! is killed or the server restarts), which only the server itself reproduces.
//!
//! The server programs are the machine's: `TRENDFLOW_PG_BINDIR` if set, else the highest
//! version in `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else
//! `pg_config --bindir`. `initdb` and `postgres` refuse to run as root, so as root (CI
//! containers) they run as the `postgres` user through `runuser -u postgres --`, in a
//! directory handed over to that user.
//!
//! ```no_run
//! use trendflow_connectors::testkit::postgres_server::PostgresServer;
//!
//! let pg = PostgresServer::start().unwrap();
//! pg.create_database("trendflow").unwrap();
//! let url = pg.connection_string("trendflow"); // host=127.0.0.1 port=… user=postgres dbname='trendflow'
//! assert_eq!(pg.psql("trendflow", "SELECT 1 + 1").unwrap().trim(), "2");
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "install Debian's postgresql package: .ci/run does";

/// A PostgreSQL server of its own, for one test.
pub struct PostgresServer {
    bindir: PathBuf,
    /// Holds `data/` (the cluster), the Unix socket and `server.log`; removed on drop.
    dir: PathBuf,
    port: u16,
    /// Running as root: server programs run as the `postgres` user.
    as_postgres: bool,
    running: AtomicBool,
}

impl PostgresServer {
    /// Creates a cluster and starts it. The error says what is missing when PostgreSQL is not
    /// installed.
    pub fn start() -> Result<PostgresServer, String> {
        let bindir = match find_bindir() {
            Ok(b) => b,
            // A fresh machine: install Debian's package, as .ci/run does.
            Err(_) => super::provision::ensure_postgres()?,
        };
        let as_postgres = running_as_root();
        if as_postgres && run(Command::new("id").args(["-u", "postgres"]), "id").is_err() {
            return Err(format!(
                "running as root, and PostgreSQL refuses to run as root: there is no `postgres` user to run it as ({INSTALL_HINT})"
            ));
        }
        let dir = make_dir(as_postgres)?;
        let mut server = PostgresServer {
            bindir,
            dir,
            port: free_port()?,
            as_postgres,
            running: AtomicBool::new(false),
        };
        // From here on, dropping `server` removes the directory.
        server.initdb()?;
        // The port was free when chosen; a test running in parallel may have taken it since.
        let mut tries = 0;
        loop {
            match server.pg_ctl_start() {
                Ok(()) => return Ok(server),
                Err(e) if tries < 3 && e.contains("already in use") => {
                    tries += 1;
                    server.port = free_port()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A libpq `key=value` connection string for database `db`, as the `postgres` superuser.
    pub fn connection_string(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname='{}'",
            self.port,
            db.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }

    /// The same as a `postgres://` URL.
    pub fn url(&self, db: &str) -> String {
        let mut encoded = String::new();
        for b in db.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("postgres://postgres@127.0.0.1:{}/{encoded}", self.port)
    }

    pub fn create_database(&self, name: &str) -> Result<(), String> {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        )
        .map(|_| ())
    }

    /// Runs SQL in database `db` with `psql` and returns its output, unaligned, without
    /// headers: one line per row, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(self.bindir.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD")
        .env_remove("PGSERVICE")
        .env_remove("PGOPTIONS");
        run(&mut cmd, "psql")
    }

    /// Kills every client connection to database `db` (`pg_terminate_backend`) and waits
    /// until they are gone; returns how many there were. Their clients see the connection
    /// closed at their next use (SQLSTATE 57P01).
    pub fn terminate_connections(&self, db: &str) -> Result<usize, String> {
        let which = format!(
            "FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            quote_literal(db)
        );
        let killed = self.psql(
            "postgres",
            &format!("SELECT count(pg_terminate_backend(pid)) {which}"),
        )?;
        let killed: usize = killed
            .trim()
            .parse()
            .map_err(|e| format!("pg_terminate_backend count `{}`: {e}", killed.trim()))?;
        // pg_terminate_backend only signals the backends.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.psql("postgres", &format!("SELECT count(*) {which}"))?;
            if left.trim() == "0" {
                return Ok(killed);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} connections to {db} still open after 10 s",
                    left.trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (fast shutdown: clients are disconnected) and starts it again on the
    /// same port, as a server restart or failover does to a client.
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl_stop("fast")?;
        self.pg_ctl_start()
    }

    /// Turns TLS on: a throwaway certificate authority signs a server certificate for
    /// 127.0.0.1 and localhost (with `openssl`), the server is restarted with `ssl=on`, and
    /// the CA's certificate is returned (the PEM file clients should trust).
    pub fn enable_tls(&self) -> Result<PathBuf, String> {
        let tls = self.dir.join("tls");
        std::fs::create_dir_all(&tls).map_err(|e| e.to_string())?;
        let openssl = |args: &[&str]| {
            run(
                Command::new("openssl").args(args).current_dir(&tls),
                "openssl",
            )
            .map(|_| ())
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=trendflow test CA",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ])?;
        std::fs::write(
            tls.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .map_err(|e| e.to_string())?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])?;
        // The server reads its key only if it owns it and nobody else can read it.
        for f in ["server.crt", "server.key"] {
            std::fs::copy(tls.join(f), self.data().join(f)).map_err(|e| e.to_string())?;
            if self.as_postgres {
                run(
                    Command::new("chown")
                        .arg("postgres:")
                        .arg(self.data().join(f)),
                    "chown",
                )?;
            }
        }
        run(
            Command::new("chmod")
                .arg("600")
                .arg(self.data().join("server.key")),
            "chmod",
        )?;
        let conf = self.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).map_err(|e| e.to_string())?;
        self.restart()?;
        Ok(tls.join("ca.crt"))
    }

    /// Stops the server at once (immediate shutdown, as a crash). Dropping does the same.
    pub fn stop(&self) -> Result<(), String> {
        self.pg_ctl_stop("immediate")
    }

    /// The end of the server's log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A server program, run as the `postgres` user when this process is root.
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        };
        // The caller's directory may be closed to the postgres user.
        cmd.current_dir(&self.dir);
        cmd
    }

    fn initdb(&self) -> Result<(), String> {
        let mut cmd = self.command("initdb");
        cmd.arg("-D").arg(self.data()).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        run(&mut cmd, "initdb").map(|_| ()).map_err(|e| {
            if self.as_postgres {
                format!(
                    "{e} (as root, the postgres user must be able to reach {})",
                    self.dir.display()
                )
            } else {
                e
            }
        })
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        // pg_ctl hands these to the server through a shell: the socket directory is quoted.
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            sh_quote(&self.dir.to_string_lossy())
        );
        let mut cmd = self.command("pg_ctl");
        // `-l`: the server's output goes to the log file, not to pg_ctl's pipes, which would
        // otherwise stay open as long as the server runs.
        cmd.args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .arg("-o")
            .arg(options)
            .arg("start");
        match run(&mut cmd, "pg_ctl start") {
            Ok(_) => {
                self.running.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => Err(format!("{e}\nserver log:\n{}", self.log_tail())),
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        if !self.running.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut cmd = self.command("pg_ctl");
        cmd.args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .args(["-m", mode, "stop"]);
        run(&mut cmd, "pg_ctl stop")?;
        self.running.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "stopping the test PostgreSQL server in {}: {e}",
                self.dir.display()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command to completion (stdin closed); its stdout, or an error with its output.
fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            if stdout.trim().is_empty() {
                String::new()
            } else {
                format!("\n{}", stdout.trim())
            }
        ))
    }
}

/// Where `initdb`, `pg_ctl` and `psql` are.
pub(crate) fn find_bindir() -> Result<PathBuf, String> {
    let has_tools = |d: &Path| {
        ["initdb", "pg_ctl", "psql"]
            .iter()
            .all(|t| d.join(t).is_file())
    };
    if let Some(d) = std::env::var_os("TRENDFLOW_PG_BINDIR") {
        let d = PathBuf::from(d);
        return if has_tools(&d) {
            Ok(d)
        } else {
            Err(format!(
                "TRENDFLOW_PG_BINDIR={}: no initdb, pg_ctl and psql there",
                d.display()
            ))
        };
    }
    // Debian: /usr/lib/postgresql/15/bin; the highest version wins.
    let mut versions: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name
                .split('.')
                .map(|p| p.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()
            else {
                continue;
            };
            let bin = entry.path().join("bin");
            if has_tools(&bin) {
                versions.push((version, bin));
            }
        }
    }
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_tools(&d) {
            return Ok(d);
        }
    }
    Err(format!(
        "PostgreSQL's server programs (initdb, pg_ctl, psql) are not in /usr/lib/postgresql/*/bin nor in `pg_config --bindir`: {INSTALL_HINT} (or set TRENDFLOW_PG_BINDIR)"
    ))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A new, empty directory under the temporary directory; owned by `postgres` when the server
/// runs as that user.
fn make_dir(for_postgres: bool) -> Result<PathBuf, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "trendflow-pg-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    // A leftover of an earlier process that had the same id.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if for_postgres && let Err(e) = run(Command::new("chown").arg("postgres:").arg(&dir), "chown") {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(dir)
}

/// A 127.0.0.1 port nothing listens on (bound, read, released).
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A word for `sh`, in single quotes.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}
