//! A tiny pool of reusable threads for plugin calls.
//!
//! Why: each plugin call runs on its own thread (so a caller can time out a call that never
//! returns), and spawning a thread per call costs more than the call itself. Idle threads are
//! reused; a thread stuck in a hung call simply never comes back to the idle list, and a new
//! one is spawned when none is idle.
//!
//! Invariants: at most `MAX_IDLE` threads wait idle; dropping the pool ends the idle ones (the
//! busy ones end after their job).

use std::sync::{Arc, Weak, mpsc};

use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send + 'static>;

const MAX_IDLE: usize = 4;

/// A job plus the worker's own sender, handed back so the worker can return to the idle
/// list. While a worker waits, the only sender of its channel is in the idle list, so
/// dropping the pool disconnects it and it exits.
struct Msg {
    job: Job,
    me: mpsc::Sender<Msg>,
}

type Idle = Mutex<Vec<mpsc::Sender<Msg>>>;

pub(crate) struct Pool {
    name: String,
    idle: Arc<Idle>,
}

impl Pool {
    pub(crate) fn new(name: impl Into<String>) -> Pool {
        Pool {
            name: name.into(),
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Run `job` on an idle thread, or on a new one.
    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut job: Job = Box::new(job);
        loop {
            let worker = self.idle.lock().pop();
            let Some(worker) = worker else { break };
            let me = worker.clone();
            match worker.send(Msg { job, me }) {
                Ok(()) => return Ok(()),
                // That thread is gone; take the job back and try another one.
                Err(mpsc::SendError(returned)) => job = returned.job,
            }
        }
        let (tx, rx) = mpsc::channel::<Msg>();
        let idle = Arc::downgrade(&self.idle);
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || worker_loop(Msg { job, me: tx }, rx, idle))
            .map(|_| ())
    }
}

fn worker_loop(first: Msg, rx: mpsc::Receiver<Msg>, idle: Weak<Idle>) {
    let mut msg = first;
    loop {
        (msg.job)();
        {
            let Some(list) = idle.upgrade() else { return };
            let mut list = list.lock();
            if list.len() >= MAX_IDLE {
                return;
            }
            list.push(msg.me);
        }
        match rx.recv() {
            Ok(next) => msg = next,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reuses_threads_and_survives_a_stuck_one() {
        let pool = Pool::new("t");
        let (tx, rx) = mpsc::channel();
        let t = tx.clone();
        pool.execute(move || t.send(std::thread::current().id()).unwrap())
            .unwrap();
        let first = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let t = tx.clone();
        pool.execute(move || t.send(std::thread::current().id()).unwrap())
            .unwrap();
        assert_eq!(rx.recv().unwrap(), first, "the idle thread is reused");

        // A stuck job does not block the next one.
        std::thread::sleep(Duration::from_millis(20));
        pool.execute(|| std::thread::sleep(Duration::from_secs(2)))
            .unwrap();
        pool.execute(move || tx.send(std::thread::current().id()).unwrap())
            .unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(1)).is_ok());
    }
}
