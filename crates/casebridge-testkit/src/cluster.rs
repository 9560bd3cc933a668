//! A throwaway PostgreSQL cluster for a machine where no server answers: `initdb` into a
//! temporary folder, a free port on 127.0.0.1, trust authentication for the `postgres` role,
//! stopped and removed when the test process ends.
//!
//! Used by [`crate::postgres_admin_url`] when `CASEBRIDGE_TEST_POSTGRES_URL` is unset and nothing
//! answers on the default `127.0.0.1:5432`, so `cargo test --workspace` passes on a fresh machine
//! that has the PostgreSQL server binaries installed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// What to install when no server binaries are found.
const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install \
                            postgresql`; macOS: `brew install postgresql`), start one and set \
                            CASEBRIDGE_TEST_POSTGRES_URL, or leave the PostgreSQL variants out \
                            with `cargo test --workspace -- --skip ::postgres`";

/// Whether something accepts connections at `addr` (within a second).
pub(crate) fn answers(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .ok()
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// The admin URL of this process's throwaway cluster, started on first use.
pub fn throwaway_cluster_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| start().unwrap_or_else(|e| panic!("{e}")))
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off `PATH`), else `PATH`.
fn bindir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_server(dir))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command run as the user the cluster belongs to: PostgreSQL refuses to run as root, so as
/// root it runs as the `postgres` OS user.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("throwaway PostgreSQL: could not run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "throwaway PostgreSQL: {what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn start() -> Result<String, String> {
    let bin = bindir().ok_or_else(|| {
        format!(
            "no PostgreSQL server answers at 127.0.0.1:5432 and no server binaries (initdb, \
             pg_ctl) were found to start a throwaway one: {INSTALL_HINT}"
        )
    })?;
    let as_postgres = is_root();
    if as_postgres
        && !Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Err(format!(
            "throwaway PostgreSQL: tests run as root, and PostgreSQL refuses to run as root; \
             there is no `postgres` user to run it as: {INSTALL_HINT}"
        ));
    }
    let dir = tempfile::Builder::new()
        .prefix("casebridge-pg-")
        .tempdir()
        .map_err(|e| format!("throwaway PostgreSQL: temporary folder: {e}"))?
        .keep();
    if as_postgres {
        run(
            {
                let mut c = Command::new("chown");
                c.arg("postgres:").arg(&dir);
                c
            },
            "chown",
        )?;
    }
    let data = dir.join("data");
    let mut initdb = command(as_postgres, &bin.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    run(initdb, "initdb")?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("throwaway PostgreSQL: no free port: {e}"))?
        .port();
    let mut pg_ctl = command(as_postgres, &bin.join("pg_ctl"));
    pg_ctl
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("server.log"))
        .arg("-o")
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            dir.display()
        ))
        .args(["-w", "-t", "60", "start"]);
    run(pg_ctl, "pg_ctl start")?;
    // Stopped and removed when this process ends, however it ends: a watcher waits for it.
    let watcher = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} -D '{data}' -m immediate stop \
         >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        stop = if as_postgres {
            format!("runuser -u postgres -- '{}'", bin.join("pg_ctl").display())
        } else {
            format!("'{}'", bin.join("pg_ctl").display())
        },
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &watcher])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("throwaway PostgreSQL: could not start its watcher: {e}"))?;
    eprintln!(
        "tests use a throwaway PostgreSQL cluster on 127.0.0.1:{port} ({}), removed when this \
         test process ends",
        dir.display()
    );
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}
