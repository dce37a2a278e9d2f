//! Child process helpers.

/// Send SIGTERM to a pid we started, then SIGKILL if it is still alive
/// after `grace`. Returns whether the process is gone.
pub fn stop_pid(pid: u32, grace: std::time::Duration) -> bool {
    if !alive(pid) {
        return true;
    }
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    if gone_within(pid, grace) {
        return true;
    }
    let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    // A process with a large heap (moto after a 100,000-event run) takes a
    // moment to be torn down even after SIGKILL.
    gone_within(pid, std::time::Duration::from_secs(3))
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

/// Whether `pid` is gone within `d` (checked every 50 ms).
fn gone_within(pid: u32, d: std::time::Duration) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < d {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !alive(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// Ask the kernel to kill the child when the process that started it dies,
/// so a crashed local runtime or test never leaves orphans behind. (The
/// signal follows the spawning thread: spawn from long-lived threads.)
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no
    // memory of the parent; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
