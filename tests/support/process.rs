//! The binaries the tests run as child processes (`resizelet run`, `resizelet webhook`): a
//! guard that kills them, their log, their loopback ports.

use std::ops::{Deref, DerefMut};
use std::process::{Child, Stdio};

/// A child process, killed (SIGKILL) and reaped when dropped, so a failing test leaves none
/// behind.
pub struct KillOnDrop(Child);

impl KillOnDrop {
    pub fn new(child: Child) -> KillOnDrop {
        KillOnDrop(child)
    }

    /// Kills and reaps the child now (a second call, as on drop, does nothing).
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where a child's stderr goes: the test's own with `RESIZELET_TEST_AGENT_LOG` set, else
/// nowhere.
pub fn child_stderr() -> Stdio {
    if std::env::var_os("RESIZELET_TEST_AGENT_LOG").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}
