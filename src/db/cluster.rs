//! The embedded PostgreSQL cluster: found on this machine, initialised once in a data
//! directory, listening only on a Unix socket inside it, stopped cleanly on exit.
//!
//! The same code serves `growthgraph serve` without `DATABASE_URL` and the test harness.
//! When run as root, PostgreSQL (which refuses root) runs as the `postgres` system user.
//! The postmaster is a direct child started from a dedicated thread that lives exactly as
//! long as it does, with a parent-death signal set: if this process dies, so does the
//! cluster, and no PostgreSQL process outlives us.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{chown, Pid, Uid, User};

const PORT: u16 = 5432;
pub const SUPERUSER: &str = "postgres";

#[derive(Debug)]
pub struct ClusterError(pub String);

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ClusterError {}

fn err(message: impl Into<String>) -> ClusterError {
    ClusterError(message.into())
}

/// Tuning for the cluster: the server keeps durability, tests trade it for speed.
#[derive(Debug, Clone, Copy)]
pub enum Durability {
    Durable,
    Throwaway,
}

pub struct Cluster {
    socket_dir: PathBuf,
    pid: Pid,
    exited: mpsc::Receiver<std::io::Result<ExitStatus>>,
}

/// The directory holding `initdb` and `postgres`: the one configured, else from `PATH`,
/// else the newest `/usr/lib/postgresql/*/bin`.
pub fn find_bin_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = configured {
        return (dir.join("postgres").is_file() && dir.join("initdb").is_file())
            .then(|| dir.to_path_buf());
    }
    let from_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path).find_map(|dir| {
            let initdb = fs::canonicalize(dir.join("initdb")).ok()?;
            let bin = initdb.parent()?.to_path_buf();
            bin.join("postgres").is_file().then_some(bin)
        })
    });
    from_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = entry.path().join("bin");
                (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                    .then_some((version, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

/// Who PostgreSQL runs as: ourselves, or the `postgres` system user when we are root.
fn server_user() -> Result<Option<User>, ClusterError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    User::from_name("postgres")
        .map_err(|e| err(format!("cannot look up the postgres system user: {e}")))?
        .ok_or_else(|| err("running as root needs a `postgres` system user to run PostgreSQL"))
        .map(Some)
}

fn prepare_dir(dir: &Path, owner: Option<&User>) -> Result<(), ClusterError> {
    fs::create_dir_all(dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| err(format!("cannot set permissions on {}: {e}", dir.display())))?;
    if let Some(user) = owner {
        chown(dir, Some(user.uid), Some(user.gid))
            .map_err(|e| err(format!("cannot hand {} to postgres: {e}", dir.display())))?;
    }
    Ok(())
}

/// Creates `root` (a cluster's directory) and returns its canonical path; when PostgreSQL
/// runs as another user, lets that user reach its directories inside.
fn open_root(root: &Path, owner: Option<&User>) -> Result<PathBuf, ClusterError> {
    fs::create_dir_all(root).map_err(|e| err(format!("cannot create {}: {e}", root.display())))?;
    let root = fs::canonicalize(root).map_err(|e| err(format!("{}: {e}", root.display())))?;
    if owner.is_some() {
        let mode = fs::metadata(&root)
            .map_err(|e| err(e.to_string()))?
            .permissions()
            .mode();
        fs::set_permissions(&root, fs::Permissions::from_mode(mode | 0o711))
            .map_err(|e| err(format!("cannot open {} to postgres: {e}", root.display())))?;
    }
    Ok(root)
}

fn as_server_user(command: &mut Command, owner: Option<&User>) {
    if let Some(user) = owner {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
}

/// Runs one of PostgreSQL's tools (`name`) as the server user, to its end; its error
/// output is the error when it fails.
fn run_to_end(command: &mut Command, owner: Option<&User>, name: &str) -> Result<(), ClusterError> {
    as_server_user(command, owner);
    let output = command
        .output()
        .map_err(|e| err(format!("cannot run {name}: {e}")))?;
    if !output.status.success() {
        return Err(err(format!(
            "{name} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

impl Cluster {
    /// Starts (initialising on first use) the cluster living in `root`.
    pub fn start(
        root: &Path,
        bin_dir: Option<&Path>,
        durability: Durability,
    ) -> Result<Self, ClusterError> {
        Self::start_with(root, bin_dir, durability, &[])
    }

    /// [`Cluster::start`] with server settings for this run (`name`, `value`), applied
    /// after the durability's own (the benchmark sizes `shared_buffers` this way).
    pub fn start_with(
        root: &Path,
        bin_dir: Option<&Path>,
        durability: Durability,
        settings: &[(&str, &str)],
    ) -> Result<Self, ClusterError> {
        let bin = find_bin_dir(bin_dir).ok_or_else(|| {
            err("PostgreSQL server binaries not found: install PostgreSQL (initdb and postgres on PATH or under /usr/lib/postgresql/*/bin) or set DATABASE_URL")
        })?;
        let owner = server_user()?;
        let root = open_root(root, owner.as_ref())?;
        let pgdata = root.join("pgdata");
        let socket_dir = root.join("run");
        prepare_dir(&socket_dir, owner.as_ref())?;

        if !pgdata.join("PG_VERSION").is_file() {
            prepare_dir(&pgdata, owner.as_ref())?;
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(&pgdata)
                .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
                .current_dir(&root)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if matches!(durability, Durability::Throwaway) {
                initdb.arg("--no-sync");
            }
            run_to_end(&mut initdb, owner.as_ref(), "initdb")?;
        }

        let log_path = root.join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| err(format!("cannot open {}: {e}", log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| err(e.to_string()))?;

        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&pgdata)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-p", &PORT.to_string(), "-c", "listen_addresses="])
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        match durability {
            Durability::Durable => {}
            Durability::Throwaway => {
                postgres.args([
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=128MB",
                ]);
            }
        }
        for (name, value) in settings {
            postgres.arg("-c").arg(format!("{name}={value}"));
        }
        as_server_user(&mut postgres, owner.as_ref());
        // Runs after the switch to the server user (a credential change clears it).
        let death_signal = match durability {
            Durability::Durable => Signal::SIGINT,
            Durability::Throwaway => Signal::SIGQUIT,
        };
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            postgres.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(death_signal)
                    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
            });
        }

        let (pid_tx, pid_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("postgres-supervisor".into())
            .spawn(move || match postgres.spawn() {
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let _ = exit_tx.send(child.wait());
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            })
            .map_err(|e| err(format!("cannot start supervisor thread: {e}")))?;
        let pid = pid_rx
            .recv()
            .map_err(|_| err("postgres supervisor vanished"))?
            .map_err(|e| err(format!("cannot start postgres: {e}")))?;
        let cluster = Cluster {
            socket_dir,
            pid: Pid::from_raw(pid as i32),
            exited: exit_rx,
        };
        cluster.wait_ready(&pgdata, &log_path)?;
        Ok(cluster)
    }

    /// Starts a hot standby of this cluster in `root`: its data directory copied with
    /// `pg_basebackup -R` (streaming from this cluster from then on), with `settings` as
    /// for [`Cluster::start_with`]. A replica to read from, for tests of
    /// `--replica-url`.
    pub fn start_standby(
        &self,
        root: &Path,
        bin_dir: Option<&Path>,
        durability: Durability,
        settings: &[(&str, &str)],
    ) -> Result<Self, ClusterError> {
        let bin =
            find_bin_dir(bin_dir).ok_or_else(|| err("PostgreSQL server binaries not found"))?;
        let owner = server_user()?;
        let root = open_root(root, owner.as_ref())?;
        let pgdata = root.join("pgdata");
        prepare_dir(&pgdata, owner.as_ref())?;
        let mut backup = Command::new(bin.join("pg_basebackup"));
        backup
            .arg("-D")
            .arg(&pgdata)
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &PORT.to_string(),
                "-U",
                SUPERUSER,
                "-R",
                "-X",
                "stream",
            ])
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if matches!(durability, Durability::Throwaway) {
            backup.args(["--no-sync", "--checkpoint=fast"]);
        }
        run_to_end(&mut backup, owner.as_ref(), "pg_basebackup")?;
        Self::start_with(&root, bin_dir, durability, settings)
    }

    fn wait_ready(&self, pgdata: &Path, log_path: &Path) -> Result<(), ClusterError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(status) = self.exited.try_recv() {
                let log = fs::read_to_string(log_path).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(err(format!(
                    "postgres exited during start-up ({status:?}): {}",
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
            // postmaster.pid's eighth line turns to "ready" once connections are accepted
            // ("standby" on a hot standby, a data directory copied from a primary with
            // `pg_basebackup -R`).
            let ready = fs::read_to_string(pgdata.join("postmaster.pid"))
                .map(|s| matches!(s.lines().nth(7).map(str::trim), Some("ready" | "standby")))
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(err("postgres did not become ready within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// URL for a database of this cluster, connecting as the superuser over the socket.
    pub fn url(&self, database: &str) -> String {
        let host: String = self
            .socket_dir
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_string(),
                b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => (b as char).to_string(),
                b => format!("%{b:02X}"),
            })
            .collect();
        format!("postgres://{SUPERUSER}@{host}:{PORT}/{database}")
    }

    /// Fast shutdown: running transactions are rolled back, the data stays consistent.
    pub fn stop(self) -> Result<(), ClusterError> {
        let _ = kill(self.pid, Signal::SIGINT);
        match self.exited.recv_timeout(Duration::from_secs(30)) {
            Ok(_) => Ok(()),
            Err(_) => {
                let _ = kill(self.pid, Signal::SIGQUIT);
                self.exited
                    .recv_timeout(Duration::from_secs(10))
                    .map(|_| ())
                    .map_err(|_| err("postgres did not stop"))
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid.as_raw() as u32
    }
}
