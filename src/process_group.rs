//! A child in its own process group is killed with its whole group when the wait for it is abandoned.
//!
//! Commands (probes, backup hooks, verify commands) run with `process_group(0)`
//! so a shell's background children die with it: killing only the direct
//! child on a timeout would leave them running, holding pipes open.

/// Kills a process group when dropped while armed (the child was still running).
pub(crate) struct GroupKiller {
    pub(crate) pid: u32,
    pub(crate) armed: bool,
}

impl GroupKiller {
    /// Armed for the group led by `pid`; disarm once the child has been reaped.
    pub(crate) fn new(pid: u32) -> GroupKiller {
        GroupKiller { pid, armed: true }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}
