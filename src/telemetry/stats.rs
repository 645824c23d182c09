//! Pipeline health: counters the stage threads bump (relaxed atomics, no locks on the frame
//! path) and the periodic report published on `<prefix>/<device_id>/stats` as a JSON object
//! (docs/WIRE.md, "Stats"). The report is built on the runtime thread from the counters and
//! the queues' gauges; rates are over the interval since the previous report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::queue::Gauge;

/// Counters shared by the stage threads.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames the source delivered.
    pub frames_in: AtomicU64,
    /// Frames the source could not read (a corrupt image): skipped.
    pub frames_bad: AtomicU64,
    /// Frames left out by the model's rate (`pipeline.model_fps`): every `stride`-th is kept.
    pub frames_strided: AtomicU64,
    /// The model's frame rate in thousandths of a frame per second; 0: the source has none.
    pub model_fps_milli: AtomicU64,
    /// Times the source lost its input (camera unplugged, stalled).
    pub source_losses: AtomicU64,
    /// Hard cuts (scene changes) seen by the person finder: every track ended there.
    pub scene_cuts: AtomicU64,
    /// Frames through preprocessing, the backbone and the per-frame projection.
    pub frames_inferred: AtomicU64,
    /// Frames whose inference failed (tract error): skipped, logged.
    pub frames_failed: AtomicU64,
    /// Nanoseconds spent on those frames (detector, tracker, and per person: crop, backbone,
    /// projection).
    pub infer_ns: AtomicU64,
    /// Person-frames through the backbone.
    pub people_inferred: AtomicU64,
    /// Pose messages made (one per frame with a result).
    pub messages_out: AtomicU64,
    /// Their encoded bytes, and the people in them.
    pub bytes_out: AtomicU64,
    pub people_out: AtomicU64,
    /// Nanoseconds spent on temporal steps, SMPL decoding and encoding.
    pub post_ns: AtomicU64,
    /// Time per pipeline stage (`smplcast bench` reads them).
    pub stages: Stages,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What the MQTT publisher counts (it adds; the stats report reads).
#[derive(Debug, Default)]
pub struct MqttCounters {
    /// Pose messages handed to the MQTT client; it sends them once connected (while the broker
    /// is down they wait in its bounded request channel).
    pub queued: AtomicU64,
    /// Pose messages dropped because the client's request channel was full (broker slow or
    /// down).
    pub publish_dropped: AtomicU64,
    /// Pose messages dropped because they waited longer than `max_age` (a broker outage).
    pub stale: AtomicU64,
    /// Successful connections (1 + reconnections).
    pub connections: AtomicU64,
    /// Handing pose messages to the client (the socket write is its event loop's).
    pub handoff: Stage,
}

/// The time one pipeline stage took, summed, and how many times it ran.
#[derive(Debug, Default)]
pub struct Stage {
    ns: AtomicU64,
    calls: AtomicU64,
}

impl Stage {
    pub fn add(&self, took: Duration) {
        self.ns.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs `f`, adding the time it took.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.add(t0.elapsed());
        out
    }

    /// (nanoseconds, calls) so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.ns.load(Ordering::Relaxed), self.calls.load(Ordering::Relaxed))
    }
}

/// Every stage a frame goes through before publishing, in order. Model stages: `detect`, `backbone`,
/// `project` (the temporal head's per-frame part) and `step` (its per-window part); the others
/// are the pipeline around them.
#[derive(Debug, Default)]
pub struct Stages {
    /// The source's `next_frame`: read and decode (with a camera or a paced source it includes
    /// waiting for the frame).
    pub capture: Stage,
    pub detect: Stage,
    /// The tracker (or the fixed region).
    pub track: Stage,
    /// Crop, resize and normalise one person's image into the backbone's tensor.
    pub preprocess: Stage,
    pub backbone: Stage,
    pub project: Stage,
    pub step: Stage,
    /// Windows, 6D → axis-angle, cameras, message assembly (the post thread minus `step`).
    pub smpl: Stage,
    /// CBOR encoding of a message.
    pub encode: Stage,
    // Publishing is timed by the publisher: [`MqttCounters::handoff`].
}

impl Stages {
    /// Name, stage and whether it runs a model, in pipeline order.
    pub fn all(&self) -> [(&'static str, &Stage, bool); 9] {
        [
            ("capture", &self.capture, false),
            ("detect", &self.detect, true),
            ("track", &self.track, false),
            ("preprocess", &self.preprocess, false),
            ("backbone", &self.backbone, true),
            ("project", &self.project, true),
            ("step", &self.step, true),
            ("smpl", &self.smpl, false),
            ("encode", &self.encode, false),
        ]
    }
}

/// One stats message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Seconds since the daemon started.
    pub uptime_s: f64,
    /// Seconds this report's rates are measured over.
    pub interval_s: f64,
    /// Frames per second from the source.
    pub fps_in: f64,
    /// Pose messages per second made.
    pub fps_out: f64,
    /// Totals since start.
    pub frames_in: u64,
    /// Frames dropped because inference was behind (the frame queue's drop-oldest).
    pub frames_dropped: u64,
    /// Frames unreadable or failed in inference.
    pub frames_bad: u64,
    /// Frames left out by the model's rate (`pipeline.model_fps`), not dropped.
    pub frames_strided: u64,
    /// The rate of the frames the model gets; absent for an unpaced source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_fps: Option<f64>,
    /// Times the source lost its input (a camera unplugged or stalled) since start.
    pub source_losses: u64,
    /// Hard cuts (scene changes) since start: every track ended there.
    pub scene_cuts: u64,
    pub messages_out: u64,
    /// Pose messages dropped before the broker (queue full: broker slow or down; or stale).
    pub messages_dropped: u64,
    /// Of those, the ones that waited longer than `mqtt.max_age_s` (a broker outage).
    pub messages_stale: u64,
    /// Mean milliseconds per frame in this interval: detector, tracker, and per person crop +
    /// backbone + projection.
    pub inference_ms: f64,
    /// Mean people per frame in this interval.
    pub people_per_frame: f64,
    /// Mean milliseconds per person-frame (inference minus the detector, per person).
    pub person_ms: f64,
    /// Mean milliseconds per detector run in this interval.
    pub detector_ms: f64,
    /// Mean milliseconds per message in this interval: temporal step + SMPL + encoding.
    pub post_ms: f64,
    /// Every queue: items waiting now and dropped since start.
    pub queues: BTreeMap<&'static str, QueueReport>,
    /// MQTT connections made (1 + reconnections).
    pub mqtt_connections: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct QueueReport {
    pub len: usize,
    pub dropped: u64,
}

/// Builds [`Report`]s from the counters, remembering the previous one for rates.
pub struct Reporter {
    counters: Arc<Counters>,
    mqtt: Arc<MqttCounters>,
    /// The frame queue (its drops are `frames_dropped`) first, then the others.
    gauges: Vec<Gauge>,
    started: Instant,
    last: (Instant, [u64; 8]),
}

impl Reporter {
    /// `gauges[0]` must be the frame queue; every pose-message queue's drops count as
    /// `messages_dropped`, as do the publisher's.
    pub fn new(counters: Arc<Counters>, mqtt: Arc<MqttCounters>, gauges: Vec<Gauge>) -> Self {
        let now = Instant::now();
        Reporter { counters, mqtt, gauges, started: now, last: (now, [0; 8]) }
    }

    /// Another reporter over the same counters and queues, with rates of its own.
    pub fn fresh(&self) -> Self {
        Reporter::new(self.counters.clone(), self.mqtt.clone(), self.gauges.clone())
    }

    /// The counters it reports.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters now, rates since the previous call.
    pub fn report(&mut self) -> Report {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let now = Instant::now();
        let (detect_ns, detector_runs) = c.stages.detect.totals();
        let totals = [
            get(&c.frames_in),
            get(&c.messages_out),
            get(&c.frames_inferred),
            get(&c.infer_ns),
            get(&c.post_ns),
            get(&c.people_inferred),
            detector_runs,
            detect_ns,
        ];
        let (then, before) = std::mem::replace(&mut self.last, (now, totals));
        let d = |i: usize| totals[i].saturating_sub(before[i]) as f64;
        let secs = (now - then).as_secs_f64().max(1e-9);
        let per = |ns: f64, n: f64| if n > 0.0 { ns / n / 1e6 } else { 0.0 };
        let queues: BTreeMap<_, _> = self
            .gauges
            .iter()
            .map(|g| (g.name(), QueueReport { len: g.len(), dropped: g.dropped() }))
            .collect();
        let frames_dropped = self.gauges.first().map_or(0, Gauge::dropped);
        let pose_drops: u64 = self.gauges.iter().skip(1).map(Gauge::dropped).sum();
        Report {
            uptime_s: round3((now - self.started).as_secs_f64()),
            interval_s: round3(secs),
            fps_in: round3(d(0) / secs),
            fps_out: round3(d(1) / secs),
            frames_in: totals[0],
            frames_dropped,
            frames_bad: get(&c.frames_bad) + get(&c.frames_failed),
            frames_strided: get(&c.frames_strided),
            model_fps: match get(&c.model_fps_milli) {
                0 => None,
                milli => Some(milli as f64 / 1e3),
            },
            source_losses: get(&c.source_losses),
            scene_cuts: get(&c.scene_cuts),
            messages_out: totals[1],
            messages_dropped: pose_drops + get(&self.mqtt.publish_dropped) + get(&self.mqtt.stale),
            messages_stale: get(&self.mqtt.stale),
            inference_ms: round3(per(d(3), d(2))),
            people_per_frame: round3(if d(2) > 0.0 { d(5) / d(2) } else { 0.0 }),
            person_ms: round3(per(d(3) - d(7), d(5))),
            detector_ms: round3(per(d(7), d(6))),
            post_ms: round3(per(d(4), d(1))),
            queues,
            mqtt_connections: get(&self.mqtt.connections),
        }
    }
}

/// The stats timer (a task on the io runtime): a report every `interval`, as a
/// [`Notice::Stats`](super::Notice::Stats) for the publisher, until `stop`. The first report
/// comes one interval after the start.
pub async fn every(
    interval: Duration,
    mut reporter: Reporter,
    notice_tx: crate::queue::Sender<super::Notice>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let report = reporter.report();
        tracing::debug!(?report, "Stats.");
        // Drop-oldest: a full queue loses its oldest report, never blocks the timer.
        let _ = notice_tx.send(super::Notice::Stats(report));
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue;

    #[test]
    fn report_counts_drops_and_rates() {
        let counters = Arc::new(Counters::default());
        let mqtt = Arc::new(MqttCounters::default());
        let (frame_tx, _frame_rx) = queue::bounded("frames", 1);
        let (pose_tx, _pose_rx) = queue::bounded("poses", 2);
        let mut r =
            Reporter::new(counters.clone(), mqtt.clone(), vec![frame_tx.gauge(), pose_tx.gauge()]);
        for i in 0..3 {
            frame_tx.send(i).unwrap();
        }
        for i in 0..5 {
            pose_tx.send(i).unwrap();
        }
        Counters::add(&counters.frames_in, 3);
        Counters::add(&counters.frames_inferred, 2);
        Counters::add(&counters.infer_ns, 20_000_000);
        Counters::add(&counters.messages_out, 1);
        mqtt.publish_dropped.fetch_add(4, Ordering::Relaxed);
        std::thread::sleep(std::time::Duration::from_millis(10));
        let rep = r.report();
        assert_eq!((rep.frames_in, rep.frames_dropped, rep.messages_dropped), (3, 2, 3 + 4));
        assert_eq!(rep.inference_ms, 10.0);
        assert_eq!(rep.queues["frames"], QueueReport { len: 1, dropped: 2 });
        assert_eq!(rep.queues["poses"], QueueReport { len: 2, dropped: 3 });
        assert!(rep.fps_in > 0.0);
        // The next interval has no new frames: rates and means fall to 0, totals stay.
        let next = r.report();
        assert_eq!((next.fps_in, next.inference_ms, next.frames_in), (0.0, 0.0, 3));
    }

    /// The stats timer on tokio's paused clock: the first report one interval after the
    /// start, then one per interval; the notice queue keeps the latest 8 and counts the rest;
    /// nothing after the stop.
    #[tokio::test(start_paused = true)]
    async fn stats_timer_reports_every_interval_until_stopped() {
        let (tx, rx) = queue::bounded("notices", 8);
        let gauge = tx.gauge();
        let stop = tokio_util::sync::CancellationToken::new();
        let reporter = Reporter::new(Arc::default(), Arc::default(), Vec::new());
        let task = tokio::spawn(every(Duration::from_secs(5), reporter, tx, stop.clone()));
        let secs = |s: f64| tokio::time::sleep(Duration::from_secs_f64(s));
        secs(4.9).await;
        assert!(rx.try_recv().is_none(), "nothing before the first interval");
        secs(0.2).await;
        assert!(matches!(rx.try_recv(), Some(crate::telemetry::Notice::Stats(_))));
        secs(50.0).await; // ten more, nobody reading
        stop.cancel();
        task.await.unwrap();
        secs(60.0).await;
        let mut kept = 0;
        while let Some(n) = rx.try_recv() {
            assert!(matches!(n, crate::telemetry::Notice::Stats(_)));
            kept += 1;
        }
        assert_eq!((kept, gauge.dropped()), (8, 2));
    }
}
