//! Table and property tests of the replicated domain state, through its public API only.

mod dedup;
mod determinism;
mod keyval;
mod mapping;
mod restore;
mod sticky;
mod upstream;
mod upstream_reload;

use raftgate_raft::{Applied, Command, Entry, Rejected, Request, State};

/// A state with the log index bookkeeping a storage layer would do.
#[derive(Default)]
pub struct Log {
    pub state: State,
    pub index: u64,
}

impl Log {
    pub fn new() -> Self {
        Log::default()
    }

    pub fn run(&mut self, c: Command) -> Result<Applied, Rejected> {
        self.index += 1;
        self.state.apply(self.index, Entry::Command(c))
    }

    pub fn req(
        &mut self,
        client: u128,
        serial: u64,
        command: Command,
    ) -> Result<Applied, Rejected> {
        self.index += 1;
        self.state.apply(
            self.index,
            Entry::Request(Request {
                client,
                serial,
                command,
            }),
        )
    }

    /// Applies a command that must succeed.
    pub fn ok(&mut self, c: Command) -> Applied {
        let shown = format!("{c:?}");
        self.run(c)
            .unwrap_or_else(|e| panic!("{shown} was rejected: {e:?}"))
    }

    pub fn snap(&self) -> Vec<u8> {
        self.state.snapshot().expect("snapshot encodes")
    }
}
