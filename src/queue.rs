//! Bounded channel that drops the **oldest** item when full, and counts what it dropped.
//!
//! Live video must never build a backlog: when a stage is slower than its input, the freshest
//! frame wins and the stale one is dropped (vector's `WhenFull` offers block / drop-newest; for
//! live video we pick drop-oldest on purpose). Every queue between pipeline stages is one of
//! these; the pipeline reports [`Sender::dropped`] and [`Receiver::len`] in its stats.
//!
//! Built on flume, so the receiving end works from threads (`recv_timeout`) and from async
//! tasks (`recv_async`) alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The receiving side is gone: nothing will ever read what is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("queue {0} is closed")]
pub struct Closed(pub &'static str);

/// Sending side. Cloneable; the queue closes when every sender is dropped.
#[derive(Debug)]
pub struct Sender<T> {
    tx: flume::Sender<T>,
    /// A receiver handle used only to evict the oldest item when the queue is full; one for all
    /// senders, so the queue counts as closed when the channel has no other receiver.
    evict: Arc<flume::Receiver<T>>,
    /// Items evicted since the queue was made, shared by all senders.
    dropped: Arc<AtomicU64>,
    name: &'static str,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            evict: self.evict.clone(),
            dropped: self.dropped.clone(),
            name: self.name,
        }
    }
}

/// Receiving side. Cloneable: several consumers share the queue, each item goes to one.
#[derive(Debug)]
pub struct Receiver<T> {
    rx: flume::Receiver<T>,
    name: &'static str,
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        Receiver { rx: self.rx.clone(), name: self.name }
    }
}

/// A queue of at most `capacity` items (at least 1) named `name` in errors and stats.
pub fn bounded<T>(name: &'static str, capacity: usize) -> (Sender<T>, Receiver<T>) {
    let (tx, rx) = flume::bounded(capacity.max(1));
    let sender = Sender { tx, evict: Arc::new(rx.clone()), dropped: Arc::default(), name };
    (sender, Receiver { rx, name })
}

impl<T> Sender<T> {
    /// Queues `item`, evicting the oldest queued items while the queue is full. Never blocks.
    ///
    /// # Errors
    /// [`Closed`] when the receiver is gone (the item is dropped, not counted).
    pub fn send(&self, mut item: T) -> Result<(), Closed> {
        loop {
            if self.tx.receiver_count() <= 1 {
                return Err(Closed(self.name));
            }
            match self.tx.try_send(item) {
                Ok(()) => return Ok(()),
                Err(flume::TrySendError::Disconnected(_)) => return Err(Closed(self.name)),
                Err(flume::TrySendError::Full(back)) => {
                    item = back;
                    // Another consumer may have emptied a slot meanwhile: only count a real
                    // eviction.
                    if self.evict.try_recv().is_ok() {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    /// Queues `item`, waiting while the queue is full: for inputs that must not lose items
    /// (a recording replayed as fast as the pipeline goes). Never evicts.
    ///
    /// # Errors
    /// [`Closed`] when the receiver is gone, also while waiting.
    pub fn send_wait(&self, mut item: T) -> Result<(), Closed> {
        loop {
            if self.tx.receiver_count() <= 1 {
                return Err(Closed(self.name));
            }
            match self.tx.send_timeout(item, Duration::from_millis(50)) {
                Ok(()) => return Ok(()),
                Err(flume::SendTimeoutError::Timeout(back)) => item = back,
                Err(flume::SendTimeoutError::Disconnected(_)) => return Err(Closed(self.name)),
            }
        }
    }

    /// Items evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    /// The queue's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A read-only view of the queue's depth and drops for stats; it neither keeps the queue
    /// open nor holds items.
    pub fn gauge(&self) -> Gauge
    where
        T: Send + 'static,
    {
        let evict = self.evict.clone();
        Gauge { name: self.name, len: Arc::new(move || evict.len()), dropped: self.dropped.clone() }
    }
}

/// Depth and drop count of one queue, whatever it carries (see [`Sender::gauge`]).
#[derive(Clone)]
pub struct Gauge {
    name: &'static str,
    len: Arc<dyn Fn() -> usize + Send + Sync>,
    dropped: Arc<AtomicU64>,
}

impl Gauge {
    /// The queue's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        (self.len)()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Items evicted so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge").field("name", &self.name).field("len", &self.len()).finish()
    }
}

impl<T> Receiver<T> {
    /// Waits up to `timeout` for the next item: `Ok(None)` on timeout, so a thread can check
    /// its shutdown token between items.
    ///
    /// # Errors
    /// [`Closed`] when every sender is gone and the queue is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<T>, Closed> {
        match self.rx.recv_timeout(timeout) {
            Ok(item) => Ok(Some(item)),
            Err(flume::RecvTimeoutError::Timeout) => Ok(None),
            Err(flume::RecvTimeoutError::Disconnected) => Err(Closed(self.name)),
        }
    }

    /// The next item, waiting asynchronously.
    ///
    /// # Errors
    /// [`Closed`] when every sender is gone and the queue is empty.
    pub async fn recv_async(&self) -> Result<T, Closed> {
        self.rx.recv_async().await.map_err(|_| Closed(self.name))
    }

    /// True when every sender is gone (items may still be waiting).
    pub fn is_closed(&self) -> bool {
        self.rx.is_disconnected()
    }

    /// The next item if one is waiting.
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Items waiting now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn full_queue_keeps_the_newest() {
        let (tx, rx) = bounded("frames", 2);
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(tx.dropped(), 3);
        assert_eq!((rx.try_recv(), rx.try_recv(), rx.try_recv()), (Some(3), Some(4), None));
    }

    #[test]
    fn closed_both_ways() {
        let (tx, rx) = bounded::<u8>("poses", 1);
        drop(rx);
        assert_eq!(tx.send(1), Err(Closed("poses")));
        let (tx, rx) = bounded::<u8>("poses", 1);
        tx.send(7).unwrap();
        drop(tx);
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Ok(Some(7)), "drained first");
        assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(Closed("poses")));
    }

    #[test]
    fn send_wait_blocks_instead_of_dropping_and_sees_the_receiver_go() {
        let (tx, rx) = bounded("replay", 1);
        let gauge = tx.gauge();
        let producer = {
            let tx = tx.clone();
            std::thread::spawn(move || (0..50).map(|i| tx.send_wait(i)).collect::<Vec<_>>())
        };
        let got: Vec<i32> = (0..50)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)))
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert!(producer.join().unwrap().iter().all(Result::is_ok));
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        assert_eq!((gauge.dropped(), gauge.len(), gauge.name()), (0, 0, "replay"));
        tx.send_wait(50).unwrap();
        assert_eq!(gauge.len(), 1);
        let waiting = std::thread::spawn(move || tx.send_wait(51));
        std::thread::sleep(Duration::from_millis(100));
        drop(rx);
        assert_eq!(
            waiting.join().unwrap(),
            Err(Closed("replay")),
            "a full queue whose receiver goes"
        );
    }

    #[test]
    fn concurrent_senders_lose_nothing_uncounted() {
        let (tx, rx) = bounded("frames", 3);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    (0..10_000).for_each(|i| tx.send(t * 100_000 + i).unwrap())
                })
            })
            .collect();
        let mut got = 0u64;
        while threads.iter().any(|t| !t.is_finished()) || !rx.is_empty() {
            got += rx.try_recv().is_some() as u64;
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
        got += std::iter::from_fn(|| rx.try_recv()).count() as u64;
        assert_eq!(got + tx.dropped(), 40_000);
    }

    proptest! {
        /// Any interleaving of sends and receives: never more than `cap` waiting, every item
        /// either received or counted as dropped, received in order, and what is waiting is
        /// always the newest items sent.
        #[test]
        fn policy_holds(cap in 1usize..5, ops in prop::collection::vec(any::<bool>(), 0..200)) {
            let (tx, rx) = bounded("prop", cap);
            let (mut sent, mut received) = (0u64, Vec::new());
            for send in ops {
                if send {
                    tx.send(sent).unwrap();
                    sent += 1;
                } else if let Some(v) = rx.try_recv() {
                    received.push(v);
                }
                prop_assert!(rx.len() <= cap);
                // The waiting items are the last ones sent.
                let waiting = rx.len() as u64;
                prop_assert!(received.last().is_none_or(|&r| r < sent - waiting));
            }
            let rest: Vec<u64> = std::iter::from_fn(|| rx.try_recv()).collect();
            prop_assert!(rest.iter().copied().eq(sent - rest.len() as u64..sent));
            received.extend(rest);
            prop_assert!(received.windows(2).all(|w| w[0] < w[1]));
            prop_assert_eq!(received.len() as u64 + tx.dropped(), sent);
        }
    }
}
