//! The one producer per process.

use std::time::Duration;

use async_trait::async_trait;
use domain::TraceContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::ClientConfig;

use crate::{
    Error, KafkaConfig, Wave, EVENT_ID_HEADER, PREVIOUS_WAVE_HEADER, WAVE_SEQUENCE_HEADER,
    WAVE_SIZE_HEADER,
};

/// Idempotent (no duplicates from producer retries), acks=all, ordered per key.
pub struct EventProducer {
    producer: FutureProducer,
    config: KafkaConfig,
}

impl EventProducer {
    /// Creates the producer; it connects lazily.
    pub fn new(config: &KafkaConfig) -> Result<Self, Error> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", &config.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // The relay queues a wave at once: send it now rather than wait the
            // default 5 ms for more (that would add to every event's delivery).
            .set("linger.ms", "1")
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            )
            .create()
            .map_err(Error::Config)?;
        Ok(EventProducer {
            producer,
            config: config.clone(),
        })
    }

    /// Publishes one event with its message timestamp (milliseconds since the epoch)
    /// and waits for the broker's acknowledgement; returns its partition and offset.
    pub async fn publish(
        &self,
        topic: &str,
        key: &str,
        event_id: &str,
        payload: &str,
        timestamp_ms: i64,
    ) -> Result<(i32, i64), Error> {
        self.enqueue(topic, key, event_id, payload, timestamp_ms, None, None)?
            .acknowledged()
            .await
    }

    /// Queues one event for publication and returns at once; several queued events
    /// travel together (pipelined), and the idempotent producer keeps their order
    /// per partition. Fails at once when librdkafka's queue is full. `wave`, its
    /// place in the relay's sequence, and `trace`, the context of the mutation that
    /// caused it, travel as headers.
    #[allow(clippy::too_many_arguments)] // one per part of the message
    pub fn enqueue(
        &self,
        topic: &str,
        key: &str,
        event_id: &str,
        payload: &str,
        timestamp_ms: i64,
        wave: Option<&Wave>,
        trace: Option<&TraceContext>,
    ) -> Result<Pending, Error> {
        let mut headers = OwnedHeaders::new().insert(Header {
            key: EVENT_ID_HEADER,
            value: Some(event_id),
        });
        if let Some(wave) = wave {
            headers = headers
                .insert(Header {
                    key: WAVE_SEQUENCE_HEADER,
                    value: Some(&wave.sequence),
                })
                .insert(Header {
                    key: WAVE_SIZE_HEADER,
                    value: Some(&wave.size.to_string()),
                })
                .insert(Header {
                    key: PREVIOUS_WAVE_HEADER,
                    value: Some(&wave.previous_ms.to_string()),
                });
        }
        if let Some(trace) = trace {
            headers = headers.insert(Header {
                key: domain::trace::TRACEPARENT,
                value: Some(&trace.traceparent),
            });
            if !trace.tracestate.is_empty() {
                headers = headers.insert(Header {
                    key: domain::trace::TRACESTATE,
                    value: Some(&trace.tracestate),
                });
            }
        }
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .timestamp(timestamp_ms)
            .headers(headers);
        self.producer
            .send_result(record)
            .map(Pending)
            .map_err(|(e, _)| Error::Delivery(e))
    }

    /// The settings it was made with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Events queued or sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.producer.in_flight_count().max(0) as usize
    }

    /// Drops the events queued and not yet sent to a broker; their `Pending`s fail
    /// at once. What is already on the wire may still land.
    pub fn cancel_queued(&self) {
        self.producer.purge(PurgeConfig::default().queue());
    }
}

/// An event queued by [`EventProducer::enqueue`].
pub struct Pending(DeliveryFuture);

impl Pending {
    /// Waits for the broker's acknowledgement (bounded by `delivery_timeout`):
    /// the partition and offset the event was written at.
    pub async fn acknowledged(self) -> Result<(i32, i64), Error> {
        match self.0.await {
            Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
            Ok(Err((e, _))) => Err(Error::Delivery(e)),
            Err(_) => Err(Error::ProducerGone),
        }
    }
}

#[async_trait]
impl shutdown::Closeable for EventProducer {
    fn name(&self) -> &str {
        "kafka-producer"
    }

    /// Flushes what is queued. librdkafka's flush blocks: it runs on a blocking
    /// thread with its own timeout, so the runtime never stalls.
    async fn close(&self) -> Result<(), shutdown::BoxError> {
        let producer = self.producer.clone();
        let bound = self.config.call_timeout;
        let flushed = tokio::time::timeout(
            bound + Duration::from_millis(500),
            tokio::task::spawn_blocking(move || producer.flush(bound)),
        )
        .await;
        match flushed {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Box::new(Error::Delivery(e))),
            Ok(Err(join)) => Err(Box::new(join)),
            Err(_) => Err(Box::new(Error::Timeout)),
        }
    }
}
