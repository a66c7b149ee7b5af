//! The queue of notification / client-reconfig scripts, as Redis Sentinel 7.0 keeps it
//! (sentinel.c `sentinelScheduleScriptExecution` and friends), without any I/O: the shell
//! spawns, waits for and kills the processes and reports back here.
//!
//! Rules: at most [`MAX_RUNNING`] scripts run at once; the queue holds at most
//! [`MAX_QUEUE`] jobs (the oldest job not running is dropped); a script that exits with 1
//! or is killed by a signal is retried after `retry_delay * 2^(retries - 1)` until it has
//! run [`MAX_RETRY`] times; any other exit code ends it (2+ is reported as an error); a
//! script running longer than `max_runtime` is killed (and so retried).

use std::collections::VecDeque;

use crate::resp::Frame;

pub const MAX_RUNNING: usize = 16;
pub const MAX_QUEUE: usize = 256;
pub const MAX_RETRY: u32 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptJob {
    /// Ours, to find the job again when its process ends.
    pub id: u64,
    /// The script path then its arguments.
    pub argv: Vec<String>,
    pub running: bool,
    pub pid: u32,
    /// Running: when it started. Scheduled retry: when it may start (0 = at once).
    pub start_time: u64,
    /// How many times it was started.
    pub retry_num: u32,
    /// Ours: a kill was already asked for this run (the kill is reported once).
    pub kill_sent: bool,
}

/// A job the shell must start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartJob {
    pub id: u64,
    pub argv: Vec<String>,
}

/// A running job past its maximum run time: the shell kills it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillJob {
    pub id: u64,
    pub pid: u32,
    /// The `-script-timeout` event message: `<path> <pid>`.
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ScriptQueue {
    jobs: VecDeque<ScriptJob>,
    next_id: u64,
    running: usize,
}

impl ScriptQueue {
    pub fn new() -> Self {
        ScriptQueue::default()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn running(&self) -> usize {
        self.running
    }

    pub fn jobs(&self) -> impl Iterator<Item = &ScriptJob> {
        self.jobs.iter()
    }

    /// Queues a script run; returns the job dropped to keep the queue at [`MAX_QUEUE`].
    pub fn schedule(&mut self, path: String, args: Vec<String>) -> Option<ScriptJob> {
        self.next_id += 1;
        let mut argv = vec![path];
        argv.extend(args);
        self.jobs.push_back(ScriptJob { id: self.next_id, argv, running: false, pid: 0, start_time: 0, retry_num: 0, kill_sent: false });
        if self.jobs.len() > MAX_QUEUE {
            // the oldest job that is not running goes, as Redis does
            if let Some(pos) = self.jobs.iter().position(|j| !j.running) {
                return self.jobs.remove(pos);
            }
        }
        None
    }

    /// The jobs to start now (marked running), within the [`MAX_RUNNING`] limit.
    pub fn due(&mut self, now: u64) -> Vec<StartJob> {
        let mut out = Vec::new();
        for job in self.jobs.iter_mut() {
            if self.running >= MAX_RUNNING {
                break;
            }
            if job.running || (job.start_time != 0 && job.start_time > now) {
                continue;
            }
            job.running = true;
            job.kill_sent = false;
            job.start_time = now;
            job.retry_num += 1;
            self.running += 1;
            out.push(StartJob { id: job.id, argv: job.argv.clone() });
        }
        out
    }

    /// The process of a job started by [`due`](Self::due) is running with `pid`.
    pub fn started(&mut self, id: u64, pid: u32) {
        if let Some(j) = self.jobs.iter_mut().find(|j| j.id == id) {
            j.pid = pid;
        }
    }

    /// A job's process ended with `exit_code` or was killed by `signal` (0 = none). Returns
    /// the `-script-error` message (`<path> <signal> <exit code>`) when it is given up
    /// without success.
    pub fn finished(&mut self, id: u64, exit_code: i32, signal: i32, now: u64, retry_delay: u64) -> Option<String> {
        let pos = self.jobs.iter().position(|j| j.id == id && j.running)?;
        self.running = self.running.saturating_sub(1);
        let job = &mut self.jobs[pos];
        if (signal != 0 || exit_code == 1) && job.retry_num != MAX_RETRY {
            job.running = false;
            job.pid = 0;
            job.start_time = now + retry_delay_for(retry_delay, job.retry_num);
            return None;
        }
        let job = self.jobs.remove(pos)?;
        (signal != 0 || exit_code != 0).then(|| format!("{} {} {}", job.argv[0], signal, exit_code))
    }

    /// Running jobs past `max_runtime` that were not asked to die yet.
    pub fn timed_out(&mut self, now: u64, max_runtime: u64) -> Vec<KillJob> {
        let mut out = Vec::new();
        for job in self.jobs.iter_mut() {
            if job.running && !job.kill_sent && now.saturating_sub(job.start_time) > max_runtime {
                job.kill_sent = true;
                out.push(KillJob { id: job.id, pid: job.pid, message: format!("{} {}", job.argv[0], job.pid) });
            }
        }
        out
    }

    /// `SENTINEL PENDING-SCRIPTS`, shaped as Redis's.
    pub fn pending_reply(&self, now: u64) -> Frame {
        let bulk = |s: String| Frame::bulk(s);
        Frame::Array(
            self.jobs
                .iter()
                .map(|j| {
                    let (time_key, time) = if j.running {
                        ("run-time", now.saturating_sub(j.start_time))
                    } else {
                        ("run-delay", if j.start_time == 0 { 0 } else { j.start_time.saturating_sub(now) })
                    };
                    Frame::Map(vec![
                        (bulk("argv".into()), Frame::Array(j.argv.iter().map(|a| bulk(a.clone())).collect())),
                        (bulk("flags".into()), bulk(if j.running { "running" } else { "scheduled" }.into())),
                        (bulk("pid".into()), bulk(j.pid.to_string())),
                        (bulk(time_key.into()), bulk(time.to_string())),
                        (bulk("retry-num".into()), bulk(j.retry_num.to_string())),
                    ])
                })
                .collect(),
        )
    }
}

/// Redis's `sentinelScriptRetryDelay`: the base delay doubled for each run after the first.
pub fn retry_delay_for(base: u64, retry_num: u32) -> u64 {
    let mut delay = base;
    let mut n = retry_num;
    while n > 1 {
        delay = delay.saturating_mul(2);
        n -= 1;
    }
    delay
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_sixteen_run_and_the_rest_wait() {
        let mut q = ScriptQueue::new();
        for i in 0..20 {
            q.schedule("/bin/true".into(), vec![i.to_string()]);
        }
        let first = q.due(1000);
        assert_eq!(first.len(), MAX_RUNNING);
        assert_eq!(q.running(), MAX_RUNNING);
        assert!(q.due(1001).is_empty(), "no slot free");
        assert_eq!(q.finished(first[0].id, 0, 0, 1002, 30_000), None);
        assert_eq!(q.len(), 19);
        let next = q.due(1003);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].argv, vec!["/bin/true".to_string(), "16".into()]);
    }

    #[test]
    fn queue_is_capped_by_dropping_the_oldest_waiting_job() {
        let mut q = ScriptQueue::new();
        q.schedule("/s".into(), vec!["0".into()]);
        q.due(1); // job 0 is running: it must survive the cap
        let mut dropped = Vec::new();
        for i in 1..=MAX_QUEUE + 1 {
            if let Some(d) = q.schedule("/s".into(), vec![i.to_string()]) {
                dropped.push(d.argv[1].clone());
            }
        }
        assert_eq!(q.len(), MAX_QUEUE);
        assert_eq!(dropped, vec!["1".to_string(), "2".into()]);
        assert!(q.jobs().next().unwrap().running);
    }

    #[test]
    fn exit_one_and_signals_retry_with_doubling_delay_up_to_ten_runs() {
        let mut q = ScriptQueue::new();
        q.schedule("/s".into(), vec![]);
        let mut now = 0;
        let mut delays = Vec::new();
        for run in 1..=MAX_RETRY {
            let started = q.due(now);
            assert_eq!(started.len(), 1, "run {run}");
            let signal = if run == 3 { 9 } else { 0 };
            let err = q.finished(started[0].id, if signal != 0 { 0 } else { 1 }, signal, now, 100);
            if run < MAX_RETRY {
                assert_eq!(err, None);
                let job = q.jobs().next().unwrap().clone();
                assert_eq!(job.retry_num, run);
                delays.push(job.start_time - now);
                assert!(q.due(job.start_time - 1).is_empty(), "not before its delay");
                now = job.start_time;
            } else {
                assert_eq!(err.as_deref(), Some("/s 0 1"));
            }
        }
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]);
        assert!(q.is_empty());
    }

    #[test]
    fn exit_two_is_not_retried_and_zero_is_silent() {
        let mut q = ScriptQueue::new();
        q.schedule("/a".into(), vec![]);
        q.schedule("/b".into(), vec![]);
        let s = q.due(5);
        assert_eq!(q.finished(s[0].id, 2, 0, 6, 100).as_deref(), Some("/a 0 2"));
        assert_eq!(q.finished(s[1].id, 0, 0, 6, 100), None);
        assert!(q.is_empty());
        assert_eq!(q.running(), 0);
    }

    #[test]
    fn timed_out_jobs_are_killed_once_and_listed_as_redis() {
        let mut q = ScriptQueue::new();
        q.schedule("/slow".into(), vec!["+sdown".into()]);
        let s = q.due(1000);
        q.started(s[0].id, 4242);
        assert!(q.timed_out(1500, 500).is_empty());
        let k = q.timed_out(1501, 500);
        assert_eq!(k, vec![KillJob { id: s[0].id, pid: 4242, message: "/slow 4242".into() }]);
        assert!(q.timed_out(1600, 500).is_empty(), "reported once");
        let reply = q.pending_reply(1700);
        let Frame::Array(items) = reply else { panic!() };
        let Frame::Map(fields) = &items[0] else { panic!() };
        let keys: Vec<String> = fields.iter().map(|(k, _)| format!("{k:?}")).collect();
        assert_eq!(keys.len(), 5);
        assert_eq!(fields[3].1, Frame::bulk("700".to_string()));
        // killed by SIGKILL: retried after the delay
        assert_eq!(q.finished(s[0].id, 0, 9, 1700, 1000), None);
        let Frame::Array(items) = q.pending_reply(1800) else { panic!() };
        let Frame::Map(fields) = &items[0] else { panic!() };
        assert_eq!(fields[1].1, Frame::bulk("scheduled".to_string()));
        assert_eq!(fields[3], (Frame::bulk("run-delay".to_string()), Frame::bulk("900".to_string())));
        assert_eq!(fields[4].1, Frame::bulk("1".to_string()));
    }
}
