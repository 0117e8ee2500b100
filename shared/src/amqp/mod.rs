//! RabbitMQ: the topology (declared in code, idempotently, by every process that uses it)
//! and connecting.

use lapin::{
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString, ShortString},
    Channel, Connection, ConnectionProperties, ExchangeKind,
};

/// Routing keys the router consumes: new complaints, and evidence added to a case that
/// waits for it.
pub const ROUTER_KEYS: [&str; 2] = [
    crate::domain::events::SUBMITTED,
    crate::domain::events::EVIDENCE_ADDED,
];

/// Names of everything one deployment declares, all under its namespace so deployments and
/// test runs sharing a vhost never see each other's messages.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Topic exchange the outbox relay publishes to.
    pub events_exchange: String,
    /// Where the broker sends messages that failed too often or could not be parsed.
    pub dead_exchange: String,
    /// The router's work queue.
    pub routing_queue: String,
    /// Messages dead-lettered from the router's queue, kept for inspection and re-drive.
    pub dead_letter_queue: String,
    /// Deliveries before the broker dead-letters a message.
    pub max_deliveries: i64,
}

impl Topology {
    pub fn new(namespace: &str, max_deliveries: i64) -> Self {
        Self {
            events_exchange: format!("{namespace}.events"),
            dead_exchange: format!("{namespace}.dead"),
            routing_queue: format!("{namespace}.routing"),
            dead_letter_queue: format!("{namespace}.routing.dead"),
            max_deliveries,
        }
    }

    /// Declares exchanges, quorum queues and bindings. Quorum queues replicate across a
    /// cluster and count deliveries, which is what bounds the attempts at a failing message.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.events_exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        channel
            .exchange_declare(
                self.dead_exchange.as_str().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;

        let mut routing_args = quorum_args();
        routing_args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.dead_exchange.as_str())),
        );
        routing_args.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongLongInt(self.max_deliveries),
        );
        let queue_opts = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(self.routing_queue.as_str().into(), queue_opts, routing_args)
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue.as_str().into(),
                queue_opts,
                quorum_args(),
            )
            .await?;
        for key in ROUTER_KEYS {
            channel
                .queue_bind(
                    self.routing_queue.as_str().into(),
                    self.events_exchange.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

/// Connects with the process's name in the connection properties so operators can tell
/// connections apart in the broker's UI.
///
/// A connection attempt that gets no handshake (a half-dead broker or proxy) is given up
/// after ten seconds so the caller's reconnect loop keeps going.
pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Connection::connect(url, props),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(lapin::Error::from(
            lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
        )),
    }
}
