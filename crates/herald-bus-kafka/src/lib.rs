//! Herald's cluster bus on Kafka (or any Kafka-protocol broker), through librdkafka.
//!
//! One topic, one partition: the log's total order is the topic's order. The leader's relay
//! produces every logged event with an idempotent producer (`acks=all`), keyed by its position,
//! and marks it relayed only once the broker acknowledged it. Every node reads every record with
//! a consumer of its own (a group per node, partition assigned by hand, nothing committed: the
//! node's position is its hub's head), so no node shares partitions with another. A record a node
//! cannot read goes to the [`DeadLetters`] keeper and, the first time, to `<topic>.dlt`.
//!
//! Nothing here trusts the broker's "latest" offset (some brokers answer it wrongly) or that a
//! topic keeps its records: a consumer that finds its position gone starts again at the earliest
//! record, and the node's feed skips positions it has and reads gaps from the database.

mod settings;

pub use settings::{check_brokers, KafkaSettings};

use async_trait::async_trait;
use herald_bus::{BadRecord, BusError, DeadLetters, EventBus, Subscription};
use herald_domain::{record, Event};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a produced record may wait for the broker's acknowledgement.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long readiness and topic creation wait for the broker.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Dropping a librdkafka client may block; it is given this long off the runtime.
const DROP_TIMEOUT: Duration = Duration::from_secs(5);

/// The Kafka bus of one node.
pub struct KafkaBus {
    settings: Arc<KafkaSettings>,
    /// The relay's producer; `None` after a failure until the broker answers again.
    producer: Mutex<Option<Arc<FutureProducer>>>,
    /// Answers readiness (a client of its own, whatever state the producer is in).
    probe: Arc<FutureProducer>,
    tx: broadcast::Sender<Arc<Event>>,
    stop: CancellationToken,
    consuming: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl KafkaBus {
    /// Creates the producer, makes sure the topic exists (when allowed to create it) and starts
    /// reading at `start` (the offset after the last record the relay published, when known).
    /// An unreachable broker is not an error here: the bus reports DOWN until it answers.
    pub async fn start(
        settings: KafkaSettings,
        start: Option<i64>,
        letters: Arc<dyn DeadLetters>,
    ) -> Result<Self, BusError> {
        let settings = Arc::new(settings);
        let producer = match ensure_topic(&settings).await {
            Ok(()) => Some(Arc::new(producer(&settings, true)?)),
            Err(e) => {
                tracing::warn!(error = %e, topic = %settings.topic, "cannot make sure the event topic exists yet");
                None
            }
        };
        let consumer = consumer(&settings)?;
        assign(&consumer, &settings.topic, start).map_err(unavailable)?;
        let probe = Arc::new(producer_for_dead_letters(&settings)?);
        let (tx, _) = broadcast::channel(4_096);
        let stop = CancellationToken::new();
        let dead_letters = producer_for_dead_letters(&settings)?;
        let reader = Reader {
            settings: settings.clone(),
            tx: tx.clone(),
            letters,
            producer: dead_letters,
            probe: probe.clone(),
        };
        let consuming = tokio::spawn(reader.run(consumer, start, stop.clone()));
        tracing::info!(brokers = %settings.brokers, topic = %settings.topic, ?start, "Kafka bus started");
        Ok(Self {
            settings,
            producer: Mutex::new(producer),
            probe,
            tx,
            stop,
            consuming: Mutex::new(Some(consuming)),
        })
    }

    /// The relay's producer. After a failure it is created again only once the broker answers
    /// and the topic exists: an idempotent producer whose broker lost its state (a restarted
    /// broker, a recreated topic) would fail forever, and records it still held would make a
    /// broker that creates topics on produce create ours with its own partition count.
    async fn producer(&self) -> Result<Arc<FutureProducer>, BusError> {
        if let Some(p) = self.producer.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(p);
        }
        ensure_topic(&self.settings).await?;
        let fresh = Arc::new(producer(&self.settings, true)?);
        *self.producer.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
        Ok(fresh)
    }

    /// Drops the producer and what it still queues (off the runtime).
    fn discard_producer(&self, last_use: Arc<FutureProducer>) {
        drop(last_use);
        if let Some(old) = self.producer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            drop_off_runtime(old);
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, events: Vec<Arc<Event>>) -> Result<Option<i64>, BusError> {
        let producer = self.producer().await?;
        let topic = self.settings.topic.as_str();
        let mut pending = Vec::with_capacity(events.len());
        for event in &events {
            let (key, payload) = (event.seq.to_string(), record::encode_event(event));
            let queued = loop {
                let record = FutureRecord::to(topic).partition(0).key(&key).payload(&payload);
                match producer.send_result(record) {
                    Ok(delivery) => break delivery,
                    Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        self.discard_producer(producer);
                        return Err(unavailable(e));
                    }
                }
            };
            pending.push(queued);
        }
        let mut next = None;
        let mut failure = None;
        // One partition: acknowledgements come in order, so awaiting them in turn costs nothing.
        for queued in pending {
            match tokio::time::timeout(DELIVERY_TIMEOUT * 2, queued).await {
                Ok(Ok(Ok(delivery))) => next = Some(delivery.offset + 1),
                Ok(Ok(Err((e, _)))) => failure = failure.or(Some(e)),
                Ok(Err(_)) | Err(_) => failure = failure.or(Some(KafkaError::Canceled)),
            }
        }
        match failure {
            None => Ok(next),
            Some(e) => {
                self.discard_producer(producer);
                Err(unavailable(e))
            }
        }
    }

    fn subscribe(&self) -> Subscription {
        self.tx.subscribe()
    }

    async fn ping(&self) -> Result<(), BusError> {
        topic_ready(&self.probe, &self.settings.topic).await
    }

    fn spans_nodes(&self) -> bool {
        true
    }

    async fn close(&self) {
        self.stop.cancel();
        let task = self.consuming.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// What reads the topic on this node.
struct Reader {
    settings: Arc<KafkaSettings>,
    tx: broadcast::Sender<Arc<Event>>,
    letters: Arc<dyn DeadLetters>,
    /// Writes to `<topic>.dlt` (a producer of its own: the relay's may be discarded).
    producer: FutureProducer,
    /// Asks the broker whether the topic is there.
    probe: Arc<FutureProducer>,
}

impl Reader {
    /// Reads from `start` on. When reading fails (broker gone) the consumer is dropped, so nothing
    /// fetches until the topic is back; then a new consumer resumes after the last record read.
    /// (librdkafka mishandles the answers of a broker that returned without the topic, and a
    /// consumer that only let its partition go still crashed now and then when it came back.)
    async fn run(self, consumer: StreamConsumer, start: Option<i64>, stop: CancellationToken) {
        let mut next = start;
        let mut reading = Some(consumer);
        while let Some(current) = reading.take() {
            let message = tokio::select! {
                m = current.recv() => m,
                _ = stop.cancelled() => {
                    drop_off_runtime(current);
                    return;
                }
            };
            match message {
                Ok(message) => {
                    next = Some(message.offset() + 1);
                    self.handle(&message).await;
                    drop(message);
                    reading = Some(current);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event topic; waiting for it (events come from the database meanwhile)");
                    drop_off_runtime(current);
                    reading = self.reopen(next, &stop).await;
                }
            }
        }
    }

    /// A new consumer assigned after `next`, once the topic is back; `None` when stopping.
    async fn reopen(&self, next: Option<i64>, stop: &CancellationToken) -> Option<StreamConsumer> {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.cancelled() => return None,
            }
            if ensure_topic(&self.settings).await.is_err()
                || topic_ready(&self.probe, &self.settings.topic).await.is_err()
            {
                continue;
            }
            let fresh = match consumer(&self.settings) {
                Ok(fresh) => fresh,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create a consumer for the event topic");
                    continue;
                }
            };
            match assign(&fresh, &self.settings.topic, next) {
                Ok(()) => {
                    tracing::info!(from = ?next, "reading the event topic again");
                    return Some(fresh);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the event topic again");
                    drop_off_runtime(fresh);
                }
            }
        }
    }

    async fn handle(&self, message: &impl Message) {
        let payload = message.payload().unwrap_or_default();
        let read = std::str::from_utf8(payload)
            .map_err(|e| vec!["record is not UTF-8 text".to_owned(), e.to_string()])
            .and_then(|text| {
                let (body, seq) = record::decode(text).map_err(|e| vec![e.to_string()])?;
                let seq = seq.ok_or_else(|| vec!["record carries no log position (seq)".to_owned()])?;
                Ok(Event { seq, body })
            });
        match read {
            Ok(event) => {
                // No subscriber is not an error: the feed refills from the database.
                let _ = self.tx.send(Arc::new(event));
            }
            Err(causes) => {
                let bad = BadRecord {
                    topic: message.topic().to_owned(),
                    partition: message.partition(),
                    offset: message.offset(),
                    key: message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: payload.to_vec(),
                    causes,
                };
                tracing::warn!(offset = bad.offset, error = %bad.causes.join(": "), "dead letter: an event record could not be read");
                if self.letters.keep(&bad).await {
                    self.to_dead_letter_topic(&bad).await;
                }
            }
        }
    }

    /// Best effort: the dead-letter list in the database is what the admin API reads.
    async fn to_dead_letter_topic(&self, bad: &BadRecord) {
        let topic = dead_letter_topic(&self.settings);
        let error = bad.causes.join(": ");
        let offset = bad.offset.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "herald-error", value: Some(error.as_str()) })
            .insert(Header { key: "herald-original-topic", value: Some(bad.topic.as_str()) })
            .insert(Header { key: "herald-original-offset", value: Some(offset.as_str()) });
        let mut record = FutureRecord::<[u8], [u8]>::to(&topic).payload(&bad.payload[..]).headers(headers);
        if let Some(key) = &bad.key {
            record = record.key(key.as_bytes());
        }
        if let Err((e, _)) = self.producer.send(record, DELIVERY_TIMEOUT).await {
            tracing::warn!(error = %e, %topic, "cannot write to the dead-letter topic");
        }
    }
}

fn client_config(settings: &KafkaSettings) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", format!("herald-{}", settings.node_id))
        // Back within a second of a broker's return (librdkafka's default backs off up to 10 s),
        // and notice a recreated topic soon.
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "10000");
    for (name, value) in &settings.properties {
        config.set(name, value);
    }
    config
}

/// A plain producer: dead letters, readiness probes.
fn producer_for_dead_letters(settings: &KafkaSettings) -> Result<FutureProducer, BusError> {
    producer(settings, false)
}

fn producer(settings: &KafkaSettings, idempotent: bool) -> Result<FutureProducer, BusError> {
    let mut config = client_config(settings);
    config
        .set("enable.idempotence", idempotent.to_string())
        // Herald creates its topics itself, with one partition.
        .set("allow.auto.create.topics", "false")
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string());
    for (name, value) in &settings.properties {
        config.set(name, value);
    }
    config.create().map_err(unavailable)
}

fn consumer(settings: &KafkaSettings) -> Result<StreamConsumer, BusError> {
    let mut config = client_config(settings);
    config
        .set("group.id", format!("herald-{}", settings.node_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false")
        // Some brokers do not answer a waiting fetch when data arrives: ask often.
        .set("fetch.wait.max.ms", "10");
    for (name, value) in &settings.properties {
        config.set(name, value);
    }
    config.create().map_err(unavailable)
}

/// Creates the topic (one partition, the configured retention) unless it exists or creation is
/// turned off; then checks that it exists.
async fn ensure_topic(settings: &KafkaSettings) -> Result<(), BusError> {
    if settings.create_topic {
        let admin: AdminClient<DefaultClientContext> =
            client_config(settings).create().map_err(unavailable)?;
        let retention = settings.retention.as_millis().to_string();
        let dead_letters = dead_letter_topic(settings);
        let replication = TopicReplication::Fixed(settings.replication_factor);
        let topics = [
            NewTopic::new(&settings.topic, 1, replication).set("retention.ms", &retention),
            NewTopic::new(&dead_letters, 1, TopicReplication::Fixed(settings.replication_factor)),
        ];
        let options =
            AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
        let outcome = admin.create_topics(&topics, &options).await;
        drop_off_runtime(admin);
        for created in outcome.map_err(unavailable)? {
            match created {
                Ok(name) => tracing::info!(topic = %name, "topic created"),
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(BusError::Unavailable(format!(
                    "cannot create topic {name} ({code}); create it with one partition, or give Herald the \
                         right to (kafka_create_topic)"
                )))
                }
            }
        }
    }
    Ok(())
}

fn dead_letter_topic(settings: &KafkaSettings) -> String {
    format!("{}.dlt", settings.topic)
}

/// Reads partition 0 from `next` (the beginning when unknown; a position the topic no longer
/// has resets to its beginning).
fn assign(consumer: &StreamConsumer, topic: &str, next: Option<i64>) -> Result<(), KafkaError> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, next.map_or(Offset::Beginning, Offset::Offset))?;
    consumer.assign(&assignment)
}

/// Whether the broker answers and has the topic with its partition.
async fn topic_ready(probe: &Arc<FutureProducer>, topic: &str) -> Result<(), BusError> {
    let (probe, topic) = (probe.clone(), topic.to_owned());
    let name = topic.clone();
    let found = tokio::task::spawn_blocking(move || {
        probe.client().fetch_metadata(Some(&topic), ADMIN_TIMEOUT).map(|m| {
            m.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        })
    })
    .await
    .map_err(|e| BusError::Unavailable(e.to_string()))?
    .map_err(unavailable)?;
    if found {
        Ok(())
    } else {
        Err(BusError::Unavailable(format!("topic {name} does not exist")))
    }
}

fn unavailable(e: KafkaError) -> BusError {
    BusError::Unavailable(e.to_string())
}

/// Drops a librdkafka client on a blocking thread with a deadline: its destructor can block (or,
/// with some brokers, hang), and must never stall the runtime.
fn drop_off_runtime<T: Send + 'static>(client: T) {
    let dropping = tokio::task::spawn_blocking(move || drop(client));
    tokio::spawn(async move {
        if tokio::time::timeout(DROP_TIMEOUT, dropping).await.is_err() {
            tracing::warn!("a Kafka client did not close in time; left behind");
        }
    });
}
