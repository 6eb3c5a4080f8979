//! Media workers, one per core by default; each meeting lives on one worker (ARCHITECTURE.md
//! "Threads"), so a meeting's packets never cross threads and take no lock.

use std::collections::HashMap;
use std::io;
use std::sync::mpsc::Sender;

use super::MeetingId;
use super::worker::{Command, MediaWorker, WorkerOptions};
use crate::meeting::{Meeting, MeetingEvent};

/// The media workers and which meeting runs where.
#[derive(Debug)]
pub struct WorkerPool {
    workers: Vec<MediaWorker>,
    placement: HashMap<MeetingId, usize>,
}

impl WorkerPool {
    /// Starts `count` workers (0: one per available core).
    pub fn spawn(count: usize, events: Sender<(MeetingId, MeetingEvent)>) -> io::Result<Self> {
        Self::spawn_with(count, events, WorkerOptions::default())
    }

    /// [`WorkerPool::spawn`] with `options` for every worker.
    pub fn spawn_with(
        count: usize,
        events: Sender<(MeetingId, MeetingEvent)>,
        options: WorkerOptions,
    ) -> io::Result<Self> {
        let count = if count == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            count
        };
        let workers = (0..count)
            .map(|i| MediaWorker::spawn_with(&format!("media-{i}"), events.clone(), options))
            .collect::<io::Result<_>>()?;
        Ok(Self {
            workers,
            placement: HashMap::new(),
        })
    }

    /// Runs `meeting` on the worker with the fewest meetings; returns that worker's index.
    pub fn add_meeting(&mut self, id: MeetingId, meeting: Meeting) -> usize {
        let mut load = vec![0usize; self.workers.len()];
        for &w in self.placement.values() {
            load[w] += 1;
        }
        let w = (0..self.workers.len())
            .min_by_key(|&w| (load[w], w))
            .expect("at least one worker");
        self.placement.insert(id, w);
        self.workers[w].send(Command::AddMeeting(id, Box::new(meeting)));
        w
    }

    /// Stops a meeting on its worker.
    pub fn remove_meeting(&mut self, id: MeetingId) {
        if let Some(w) = self.placement.remove(&id) {
            self.workers[w].send(Command::RemoveMeeting(id));
        }
    }

    /// Sends a command for `meeting` to the worker that runs it; false if none does.
    pub fn send(&self, meeting: MeetingId, command: Command) -> bool {
        match self.placement.get(&meeting) {
            Some(&w) => {
                self.workers[w].send(command);
                true
            }
            None => false,
        }
    }

    /// The workers (for their counters).
    pub fn workers(&self) -> &[MediaWorker] {
        &self.workers
    }

    /// The worker a meeting runs on.
    pub fn worker_of(&self, meeting: MeetingId) -> Option<usize> {
        self.placement.get(&meeting).copied()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use super::*;
    use crate::meeting::switching::SwitchingConfig;

    #[test]
    fn meetings_spread_over_workers_and_commands_follow_them() {
        let (tx, _rx) = channel();
        let mut pool = WorkerPool::spawn(2, tx).unwrap();
        assert_eq!(pool.workers().len(), 2);
        let placed: Vec<usize> = (1..=3)
            .map(|id| pool.add_meeting(id, Meeting::new(SwitchingConfig::default(), 4)))
            .collect();
        assert_eq!(placed, vec![0, 1, 0]);
        assert!(pool.send(2, Command::RemoveLeg(5)));
        pool.remove_meeting(1);
        assert_eq!(pool.worker_of(1), None);
        assert!(!pool.send(1, Command::RemoveLeg(5)));
        // The freed worker takes the next meeting.
        assert_eq!(
            pool.add_meeting(4, Meeting::new(SwitchingConfig::default(), 4)),
            0
        );
        let default = WorkerPool::spawn(0, channel().0).unwrap();
        assert_eq!(
            default.workers().len(),
            std::thread::available_parallelism().map_or(1, usize::from)
        );
    }
}
