//! The service as this host runs it, for `check-config` and `setup-db` on the main thread: the
//! user it runs as (the init script's `SKYPUNCH_USER` in `/etc/default/skypunch`, else the
//! unit's `skypunch`), the folders its service manager makes at start, which service manager
//! the host has, and whether that user may read or write a path. Reads the defaults file, the
//! password and group databases and `/run/systemd/system`; writes nothing.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The init script's settings, as the init script reads them; `SKYPUNCH_DEFAULTS` names
/// another file (tests), as it does for the script.
pub const DEFAULTS: &str = "/etc/default/skypunch";

/// The user the unit runs the daemon as (`User=` in skypunch.service).
const UNIT_USER: &str = "skypunch";

/// The folders the unit (`RuntimeDirectory=`, `LogsDirectory=`) and the init script (`RUNDIR`,
/// `LOGDIR`) make for the service user at every start, unless the defaults file moves them.
const RUNDIR: &str = "/run/skypunch";
const LOGDIR: &str = "/var/log/skypunch";

/// A user account: enough to judge access as it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Every group it is in, its primary one included.
    pub groups: Vec<u32>,
}

/// Who the service runs as and what its service manager prepares.
#[derive(Debug)]
pub struct Service {
    /// The account paths are judged as: the service user when run as root, else this user.
    pub account: Account,
    /// Why that account: shown to the operator.
    pub why: String,
    /// Folders made (and handed to the service user) at every start.
    pub managed: Vec<PathBuf>,
}

/// Why the service's account cannot be told.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// The defaults file the init script reads.
pub fn defaults_path() -> PathBuf {
    std::env::var_os("SKYPUNCH_DEFAULTS")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULTS), PathBuf::from)
}

/// `KEY=value` assignments of a shell fragment such as `/etc/default/skypunch`: the last
/// plain assignment of `key` wins, quotes are removed; anything cleverer is not understood
/// (`None`, as for an absent key).
pub fn shell_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| {
            let v = v.split(" #").next().unwrap_or("").trim();
            v.trim_matches(|c| c == '"' || c == '\'').to_string()
        })
}

/// The service as this host runs it. Run by root, paths are judged as the service user;
/// run by anyone else, as that user (who can only be starting it by hand).
pub fn service() -> Result<Service, Error> {
    let defaults = defaults_path();
    let text = std::fs::read_to_string(&defaults).unwrap_or_default();
    let folder = |key: &str, default: &str| {
        PathBuf::from(
            shell_value(&text, key)
                .filter(|v| !v.is_empty())
                .unwrap_or(default.into()),
        )
    };
    let managed = vec![folder("RUNDIR", RUNDIR), folder("LOGDIR", LOGDIR)];
    let me = current()?;
    if me.uid != 0 {
        let why = format!("user {}, who runs this command", me.name);
        return Ok(Service {
            account: me,
            why,
            managed,
        });
    }
    let (name, why) = match shell_value(&text, "SKYPUNCH_USER") {
        Some(user) if !user.is_empty() => {
            let why = format!(
                "user {user}, the service's (SKYPUNCH_USER in {})",
                defaults.display()
            );
            (user, why)
        }
        _ if lookup(UNIT_USER).is_some() => (
            UNIT_USER.to_string(),
            format!("user {UNIT_USER}, the service's (User= of its unit)"),
        ),
        _ => (
            "root".to_string(),
            "user root (no skypunch user on this host)".to_string(),
        ),
    };
    let account = lookup(&name).ok_or_else(|| {
        Error(format!(
            "the service's user {name} ({why}) does not exist on this host: create it \
             (useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {name}) \
             or set SKYPUNCH_USER in {}",
            defaults.display()
        ))
    })?;
    Ok(Service {
        account,
        why,
        managed,
    })
}

/// The user running this command.
pub fn current() -> Result<Account, Error> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    by_uid(uid).ok_or_else(|| Error(format!("uid {uid} has no entry in the password database")))
}

/// Whether the host runs systemd (`sd_booted`'s test).
pub fn has_systemd() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The command that starts the service on this host.
pub fn start_command() -> &'static str {
    if has_systemd() {
        "systemctl start skypunch"
    } else {
        "service skypunch start"
    }
}

/// An account by name, from the password and group databases.
pub fn lookup(name: &str) -> Option<Account> {
    let cname = CString::new(name).ok()?;
    // SAFETY: a valid C string; getpwnam's static result is copied out at once, on the one
    // thread that runs the CLI.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    account_of(pw)
}

fn by_uid(uid: u32) -> Option<Account> {
    // SAFETY: as in `lookup`.
    let pw = unsafe { libc::getpwuid(uid) };
    account_of(pw)
}

fn account_of(pw: *mut libc::passwd) -> Option<Account> {
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, from getpwnam/getpwuid; its strings are valid C strings.
    let (name, uid, gid) = unsafe {
        let p = &*pw;
        (
            std::ffi::CStr::from_ptr(p.pw_name).to_owned(),
            p.pw_uid,
            p.pw_gid,
        )
    };
    let groups = groups_of(&name, gid);
    Some(Account {
        name: name.to_string_lossy().into_owned(),
        uid,
        gid,
        groups,
    })
}

fn groups_of(name: &CString, gid: u32) -> Vec<u32> {
    let mut n: libc::c_int = 64;
    loop {
        let mut list = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: `list` holds `n` entries; getgrouplist writes at most that many and sets
        // `n` to the count (or the count needed, returning -1, when it is too small).
        let found = unsafe { libc::getgrouplist(name.as_ptr(), gid, list.as_mut_ptr(), &mut n) };
        if found >= 0 {
            list.truncate(n as usize);
            return list;
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65536 {
            return vec![gid];
        }
    }
}

/// What `account` may do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Create files in a folder (write and search), or append to a file.
    Write,
}

/// Whether `account` may read or write `path`, as the kernel decides (modes, ACLs, a
/// read-only mount): for this process's own user by `access(2)`, for another in a child
/// process that takes that user's ids first, so this process keeps its own.
pub fn may(account: &Account, path: &Path, what: Access) -> bool {
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let is_dir = path.is_dir();
    let mode = match (what, is_dir) {
        (Access::Read, false) => libc::R_OK,
        (Access::Read, true) => libc::R_OK | libc::X_OK,
        (Access::Write, false) => libc::W_OK,
        (Access::Write, true) => libc::W_OK | libc::X_OK,
    };
    // SAFETY: geteuid cannot fail.
    if account.uid == unsafe { libc::geteuid() } {
        // SAFETY: a valid C string; AT_EACCESS judges by the effective ids, as opening would.
        return unsafe { libc::faccessat(libc::AT_FDCWD, cpath.as_ptr(), mode, libc::AT_EACCESS) }
            == 0;
    }
    as_user(account, &cpath, mode)
}

/// `access(2)` in a forked child that has become `account`. The child calls only
/// async-signal-safe functions (setgroups, setgid, setuid, access, _exit), everything it
/// needs being prepared before the fork.
fn as_user(account: &Account, path: &CString, mode: libc::c_int) -> bool {
    let groups: Vec<libc::gid_t> = account.groups.clone();
    // SAFETY: fork in the CLI's one thread; the child only makes the system calls below and
    // leaves with _exit, never returning into Rust code.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: plain system calls on values prepared before the fork.
        unsafe {
            let ok = libc::setgroups(groups.len(), groups.as_ptr()) == 0
                && libc::setgid(account.gid) == 0
                && libc::setuid(account.uid) == 0
                && libc::access(path.as_ptr(), mode) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    if pid < 0 {
        return false;
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    waited == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_file_is_read_as_the_init_script_reads_it() {
        let text = "# the user\nSKYPUNCH_USER=skypunch\n#RUNDIR=/x\nRUNDIR=\"/run/sp\"\n\
                    SKYPUNCH_USER='mon'  # later wins\n";
        assert_eq!(shell_value(text, "SKYPUNCH_USER").as_deref(), Some("mon"));
        assert_eq!(shell_value(text, "RUNDIR").as_deref(), Some("/run/sp"));
        assert_eq!(shell_value(text, "LOGDIR"), None);
        assert_eq!(
            shell_value("SKYPUNCH_USER=\n", "SKYPUNCH_USER").as_deref(),
            Some("")
        );
    }

    #[test]
    fn access_is_judged_for_this_user_and_for_another() {
        let me = current().unwrap();
        let dir = std::env::temp_dir();
        assert!(may(&me, &dir, Access::Write));
        assert!(!may(&me, Path::new("/nonexistent/x"), Access::Read));
        // `nobody` may not write into a folder only its owner may write (root's /root, or
        // a fresh 0700 folder of this user).
        let Some(nobody) = lookup("nobody") else {
            return;
        };
        let private = dir.join(format!("sp-service-{}", std::process::id()));
        std::fs::create_dir_all(&private).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        if me.uid == 0 {
            assert!(!may(&nobody, &private, Access::Write));
            std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o777)).unwrap();
            assert!(may(&nobody, &private, Access::Write));
        }
        std::fs::remove_dir_all(&private).unwrap();
    }
}
