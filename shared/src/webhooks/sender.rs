//! One delivery attempt: sign the stored body with a fresh timestamp, POST it, and describe
//! what happened. The client never follows redirects, never uses a proxy (a proxy would
//! resolve the name itself) and resolves names only through [`CheckedResolver`], so it
//! connects only to addresses that passed the SSRF policy at the moment of connecting.

use std::{sync::Arc, time::Duration};

use chrono::Utc;

use super::{
    schedule::parse_retry_after,
    signing::{signature_header, SigningKey},
    ssrf::{check_url, CheckedResolver, Policy, Refused},
};

/// Largest part of a response body kept in the delivery log.
pub const EXCERPT_BYTES: usize = 1024;
const USER_AGENT: &str = concat!("Redress-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Why an attempt failed, as stored in the delivery log (`error_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No complete answer within the timeout.
    Timeout,
    /// The TCP or TLS connection failed (refused, reset, certificate).
    Connect,
    /// The URL or an address its name resolves to is not allowed (SSRF policy).
    RefusedAddress,
    /// The receiver answered with a redirect, which is never followed.
    Redirect,
    /// The receiver answered with a status other than 2xx or 3xx.
    HttpStatus,
    /// The endpoint's stored secret could not be read (should never happen).
    Secret,
    /// Anything else the HTTP client reported.
    Request,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::RefusedAddress => "refused_address",
            ErrorKind::Redirect => "redirect",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::Secret => "secret",
            ErrorKind::Request => "request",
        }
    }
}

/// What one attempt produced.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryOutcome {
    /// The receiver's status code, if it answered.
    pub status: Option<u16>,
    pub latency: Duration,
    /// The receiver's `Retry-After`, if it sent one.
    pub retry_after: Option<Duration>,
    /// The start of the response body (at most [`EXCERPT_BYTES`]), lossily decoded.
    pub response_excerpt: Option<String>,
    /// `None` exactly when the attempt succeeded (2xx).
    pub error: Option<(ErrorKind, String)>,
    /// The `webhook-timestamp` sent (0 when nothing was sent).
    pub timestamp: i64,
}

/// How the outcome counts for the message and its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// 410 Gone: disable the endpoint.
    Gone,
    Failed,
}

impl DeliveryOutcome {
    pub fn verdict(&self) -> Verdict {
        match self.status {
            Some(s) if (200..300).contains(&s) => Verdict::Delivered,
            Some(410) => Verdict::Gone,
            _ => Verdict::Failed,
        }
    }

    /// The receiver asked us to slow down: 429, or 503 with a `Retry-After`.
    pub fn is_throttled(&self) -> bool {
        self.status == Some(429) || (self.status == Some(503) && self.retry_after.is_some())
    }

    fn refused(refusal: Refused) -> Self {
        Self {
            status: None,
            latency: Duration::ZERO,
            retry_after: None,
            response_excerpt: None,
            error: Some((ErrorKind::RefusedAddress, refusal.to_string())),
            timestamp: 0,
        }
    }
}

/// One message to one endpoint, as the dispatcher hands it over.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    pub url: &'a str,
    /// The `webhook-id`: the same on every attempt of one message.
    pub msg_id: &'a str,
    /// The exact bytes stored when the message was created; signed and sent unchanged.
    pub body: &'a str,
    /// Current key first, then the previous one while a rotation overlaps.
    pub keys: &'a [SigningKey],
}

#[derive(Clone, Debug)]
pub struct WebhookSender {
    client: reqwest::Client,
    policy: Policy,
}

impl WebhookSender {
    /// A sender using the system resolver behind the SSRF check.
    pub fn new(policy: Policy, timeout: Duration) -> Result<Self, reqwest::Error> {
        Self::with_resolver(CheckedResolver::new(policy), timeout)
    }

    pub fn with_resolver(
        resolver: CheckedResolver,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let policy = resolver.policy();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .https_only(!policy.allow_loopback)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self { client, policy })
    }

    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, reqwest::Error> {
        Self::new(
            Policy {
                allow_loopback: settings.webhook_allow_loopback,
            },
            Duration::from_millis(settings.webhooks.timeout_ms),
        )
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Makes one attempt. Never fails: every problem is described in the outcome.
    pub async fn deliver(&self, d: &Delivery<'_>) -> DeliveryOutcome {
        // Literal-IP hosts never reach the resolver, so the URL is checked here at every send.
        if let Err(refusal) = check_url(d.url, self.policy) {
            return DeliveryOutcome::refused(refusal);
        }
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(d.keys, d.msg_id, timestamp, d.body.as_bytes());
        let started = std::time::Instant::now();
        let sent = self
            .client
            .post(d.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", d.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.body.to_owned())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                return DeliveryOutcome {
                    status: None,
                    latency: started.elapsed(),
                    retry_after: None,
                    response_excerpt: None,
                    error: Some(classify(e)),
                    timestamp,
                }
            }
        };
        let status = response.status();
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after =
            header(reqwest::header::RETRY_AFTER).and_then(|v| parse_retry_after(&v, Utc::now()));
        let location = header(reqwest::header::LOCATION);
        let excerpt = read_excerpt(&mut response).await;
        let latency = started.elapsed();
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            let to = location
                .map(|l| truncate(&l, 200))
                .unwrap_or_else(|| "nowhere".to_owned());
            Some((
                ErrorKind::Redirect,
                format!(
                    "HTTP {}: redirects are not followed (Location: {to}); register the final URL",
                    status.as_u16()
                ),
            ))
        } else {
            Some((ErrorKind::HttpStatus, format!("HTTP {}", status.as_u16())))
        };
        DeliveryOutcome {
            status: Some(status.as_u16()),
            latency,
            retry_after,
            response_excerpt: excerpt,
            error,
            timestamp,
        }
    }
}

/// Reads at most [`EXCERPT_BYTES`] of the body and drops the rest unread, so a receiver
/// answering with a huge body costs us nothing. Errors mid-body (the timeout included)
/// keep what arrived: the status already decided the attempt.
async fn read_excerpt(response: &mut reqwest::Response) -> Option<String> {
    let mut buf = Vec::new();
    while buf.len() < EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    if buf.is_empty() {
        return None;
    }
    buf.truncate(EXCERPT_BYTES);
    let text = String::from_utf8_lossy(&buf).into_owned();
    Some(text)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Sorts a client error into an [`ErrorKind`] with a message fit for the tenant's delivery
/// log: the cause chain without the URL (which may carry the tenant's own credentials).
fn classify(e: reqwest::Error) -> (ErrorKind, String) {
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut chain = Vec::new();
    let mut refused = None;
    while let Some(err) = source {
        if let Some(r) = err.downcast_ref::<Refused>() {
            refused = Some(r.to_string());
        }
        chain.push(err.to_string());
        source = err.source();
    }
    chain.dedup();
    if let Some(r) = refused {
        return (ErrorKind::RefusedAddress, r);
    }
    let kind = if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Request
    };
    let message = if kind == ErrorKind::Timeout {
        "no answer within the timeout".to_owned()
    } else {
        truncate(&chain.join(": "), 500)
    };
    (kind, message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::{
        collections::HashMap,
        net::IpAddr,
        sync::{atomic::AtomicUsize, Mutex},
    };

    use super::*;
    use crate::webhooks::{
        schedule::{decide, Decision, RetrySchedule},
        signing::generate_secret,
        ssrf::{Lookup, StaticLookup},
        testing::{Received, Receiver, Reply},
    };

    const DEV: Policy = Policy {
        allow_loopback: true,
    };
    const BODY: &str = r#"{"type":"complaint.status_changed","timestamp":"2026-11-21T08:00:00Z","data":{"complaint_id":"cmp_1","status":"routed","note":"押金"}}"#;

    fn sender(timeout: Duration) -> WebhookSender {
        WebhookSender::new(DEV, timeout).unwrap()
    }

    fn verify_with_reference(
        secret: &str,
        r: &Received,
    ) -> Result<(), standardwebhooks::WebhookError> {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &r.headers)
    }

    /// Runs attempts the way the dispatcher does (send, decide, wait until due) until the
    /// message is delivered or `max` attempts were made.
    async fn run_schedule(
        s: &WebhookSender,
        schedule: &RetrySchedule,
        d: &Delivery<'_>,
        max: u32,
    ) -> Vec<(DeliveryOutcome, Decision)> {
        let mut log = Vec::new();
        for attempt in 1..=max {
            let outcome = s.deliver(d).await;
            let decision = decide(&outcome, attempt, schedule, Utc::now(), 0.0);
            log.push((outcome, decision.clone()));
            match decision {
                Decision::Retry { at, .. } => {
                    let wait = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                _ => break,
            }
        }
        log
    }

    #[tokio::test]
    async fn a_delivery_verifies_with_the_reference_library_and_sends_the_signed_bytes() {
        let rx = Receiver::always(Reply::status(204)).await.unwrap();
        let secret = generate_secret();
        let keys = [SigningKey::parse(&secret).unwrap()];
        let d = Delivery {
            url: &rx.url("/hooks?tenant=a"),
            msg_id: "msg_0001",
            body: BODY,
            keys: &keys,
        };
        let outcome = sender(Duration::from_secs(5)).deliver(&d).await;
        assert_eq!(outcome.verdict(), Verdict::Delivered, "{outcome:?}");
        assert_eq!(outcome.error, None);
        let seen = rx.requests();
        assert_eq!(seen.len(), 1);
        let r = &seen[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hooks?tenant=a");
        assert_eq!(r.body, BODY.as_bytes());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("webhook-id"), Some("msg_0001"));
        assert_eq!(
            r.header("webhook-timestamp"),
            Some(outcome.timestamp.to_string().as_str())
        );
        verify_with_reference(&secret, r).unwrap();
    }

    #[tokio::test]
    async fn a_failed_message_recovers_with_the_same_webhook_id_and_a_fresh_signature() {
        let rx = Receiver::start(|n| {
            if n == 0 {
                Reply::status(500).body("boom")
            } else {
                Reply::status(200)
            }
        })
        .await
        .unwrap();
        let secret = generate_secret();
        let keys = [SigningKey::parse(&secret).unwrap()];
        let url = rx.url("/");
        let d = Delivery {
            url: &url,
            msg_id: "msg_recover",
            body: BODY,
            keys: &keys,
        };
        let schedule =
            RetrySchedule::new(vec![Duration::from_secs(1)], 0.0, Duration::from_secs(60));
        let log = run_schedule(&sender(Duration::from_secs(5)), &schedule, &d, 3).await;
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].0.status, Some(500));
        assert_eq!(log[0].0.response_excerpt.as_deref(), Some("boom"));
        assert!(matches!(log[0].1, Decision::Retry { .. }));
        assert_eq!(log[1].1, Decision::Delivered);
        let seen = rx.requests();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].header("webhook-id"), seen[1].header("webhook-id"));
        assert_ne!(
            seen[0].header("webhook-timestamp"),
            seen[1].header("webhook-timestamp")
        );
        assert_ne!(
            seen[0].header("webhook-signature"),
            seen[1].header("webhook-signature")
        );
        assert_eq!(seen[0].body, seen[1].body);
        for r in &seen {
            verify_with_reference(&secret, r).unwrap();
        }
    }

    #[tokio::test]
    async fn a_429_with_retry_after_is_not_retried_before_the_receiver_asked() {
        let rx = Receiver::start(|n| {
            if n == 0 {
                Reply::status(429).header("Retry-After", "2")
            } else {
                Reply::status(200)
            }
        })
        .await
        .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let d = Delivery {
            url: &url,
            msg_id: "msg_429",
            body: BODY,
            keys: &keys,
        };
        // The schedule alone would retry after 0 s; Retry-After must win.
        let schedule = RetrySchedule::new(vec![Duration::ZERO], 0.0, Duration::from_secs(60));
        let log = run_schedule(&sender(Duration::from_secs(5)), &schedule, &d, 3).await;
        assert_eq!(log[0].0.retry_after, Some(Duration::from_secs(2)));
        assert!(log[0].0.is_throttled());
        match &log[0].1 {
            Decision::Retry { throttle_until, .. } => assert!(throttle_until.is_some()),
            other => panic!("{other:?}"),
        }
        assert_eq!(log[1].1, Decision::Delivered);
        let seen = rx.requests();
        let gap = seen[1].at - seen[0].at;
        assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
    }

    #[tokio::test]
    async fn a_410_answer_means_the_endpoint_is_disabled() {
        let rx = Receiver::always(Reply::status(410)).await.unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let d = Delivery {
            url: &url,
            msg_id: "msg_410",
            body: BODY,
            keys: &keys,
        };
        let schedule = RetrySchedule::new(vec![Duration::ZERO; 5], 0.0, Duration::from_secs(60));
        let log = run_schedule(&sender(Duration::from_secs(5)), &schedule, &d, 5).await;
        assert_eq!(log.len(), 1, "no retry after 410");
        assert_eq!(log[0].0.verdict(), Verdict::Gone);
        assert_eq!(log[0].1, Decision::Gone);
    }

    #[tokio::test]
    async fn a_slow_receiver_times_out_and_the_retry_succeeds() {
        let rx = Receiver::start(|n| {
            if n == 0 {
                Reply::status(200).after(Duration::from_secs(3))
            } else {
                Reply::status(200)
            }
        })
        .await
        .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let d = Delivery {
            url: &url,
            msg_id: "msg_slow",
            body: BODY,
            keys: &keys,
        };
        let schedule = RetrySchedule::new(vec![Duration::ZERO], 0.0, Duration::from_secs(60));
        let log = run_schedule(&sender(Duration::from_secs(1)), &schedule, &d, 3).await;
        let first = &log[0].0;
        assert_eq!(
            first.error.as_ref().map(|e| e.0),
            Some(ErrorKind::Timeout),
            "{first:?}"
        );
        assert!(
            first.latency >= Duration::from_millis(900) && first.latency < Duration::from_secs(3)
        );
        assert!(matches!(log[0].1, Decision::Retry { .. }));
        assert_eq!(log[1].1, Decision::Delivered);
        assert_eq!(rx.requests().len(), 2);
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_even_to_a_reachable_address() {
        let target = Receiver::always(Reply::status(200)).await.unwrap();
        let location = target.url("/internal");
        let rx = Receiver::always(Reply::status(307).header("Location", &location))
            .await
            .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let d = Delivery {
            url: &url,
            msg_id: "msg_redirect",
            body: BODY,
            keys: &keys,
        };
        let outcome = sender(Duration::from_secs(5)).deliver(&d).await;
        assert_eq!(outcome.status, Some(307));
        assert_eq!(outcome.verdict(), Verdict::Failed);
        let (kind, message) = outcome.error.unwrap();
        assert_eq!(kind, ErrorKind::Redirect);
        assert!(message.contains(&location), "{message}");
        assert!(
            target.requests().is_empty(),
            "the redirect target was called"
        );
    }

    #[tokio::test]
    async fn a_redirect_to_the_metadata_address_is_reported_and_not_followed() {
        let rx = Receiver::always(
            Reply::status(302).header("Location", "http://169.254.169.254/latest/meta-data/"),
        )
        .await
        .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let outcome = sender(Duration::from_secs(2))
            .deliver(&Delivery {
                url: &url,
                msg_id: "msg_meta",
                body: BODY,
                keys: &keys,
            })
            .await;
        assert_eq!(outcome.status, Some(302));
        assert_eq!(outcome.error.map(|e| e.0), Some(ErrorKind::Redirect));
        assert!(outcome.latency < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn during_a_rotation_either_secret_verifies_the_delivery() {
        let rx = Receiver::always(Reply::status(200)).await.unwrap();
        let old = generate_secret();
        let new = generate_secret();
        let keys = [
            SigningKey::parse(&new).unwrap(),
            SigningKey::parse(&old).unwrap(),
        ];
        let url = rx.url("/");
        let outcome = sender(Duration::from_secs(5))
            .deliver(&Delivery {
                url: &url,
                msg_id: "msg_rotation",
                body: BODY,
                keys: &keys,
            })
            .await;
        assert_eq!(outcome.verdict(), Verdict::Delivered);
        let r = &rx.requests()[0];
        assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 2);
        verify_with_reference(&old, r).unwrap();
        verify_with_reference(&new, r).unwrap();
        assert!(verify_with_reference(&generate_secret(), r).is_err());
    }

    #[tokio::test]
    async fn literal_internal_addresses_and_plain_http_are_refused_at_send() {
        let strict = WebhookSender::new(Policy::default(), Duration::from_secs(2)).unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        for url in [
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data/",
            "https://10.0.0.1/",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://2130706433/",
            "http://example.com/",
        ] {
            let outcome = strict
                .deliver(&Delivery {
                    url,
                    msg_id: "msg_ssrf",
                    body: BODY,
                    keys: &keys,
                })
                .await;
            assert_eq!(
                outcome.error.map(|e| e.0),
                Some(ErrorKind::RefusedAddress),
                "{url}"
            );
            assert_eq!(outcome.timestamp, 0, "{url} was sent");
        }
    }

    #[tokio::test]
    async fn a_loopback_receiver_is_unreachable_without_allow_loopback() {
        let rx = Receiver::always(Reply::status(200)).await.unwrap();
        let strict = WebhookSender::new(Policy::default(), Duration::from_secs(2)).unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        for url in [rx.url("/"), format!("https://{}/", rx.addr())] {
            let outcome = strict
                .deliver(&Delivery {
                    url: &url,
                    msg_id: "msg_lo",
                    body: BODY,
                    keys: &keys,
                })
                .await;
            assert_eq!(
                outcome.error.map(|e| e.0),
                Some(ErrorKind::RefusedAddress),
                "{url}"
            );
        }
        assert!(rx.requests().is_empty());
    }

    /// A DNS answer that changes after registration: the name looked public when it was
    /// checked, and points at an internal service when the message goes out.
    struct Rebinding {
        answers: Mutex<HashMap<String, Vec<IpAddr>>>,
        lookups: AtomicUsize,
    }

    impl Lookup for Rebinding {
        fn lookup(
            &self,
            host: &str,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>
        {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = self
                .answers
                .lock()
                .unwrap()
                .get(host)
                .cloned()
                .unwrap_or_default();
            Box::pin(async move { Ok(answer) })
        }
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_an_internal_address_after_registration_is_refused_at_connect() {
        let rx = Receiver::always(Reply::status(200)).await.unwrap();
        let lookup = Arc::new(Rebinding {
            answers: Mutex::new(HashMap::from([(
                "hooks.partner.example".to_owned(),
                vec!["93.184.215.14".parse().unwrap()],
            )])),
            lookups: AtomicUsize::new(0),
        });
        let resolver = CheckedResolver::with_lookup(Policy::default(), lookup.clone());
        let url = format!("https://hooks.partner.example:{}/hook", rx.addr().port());
        crate::webhooks::ssrf::check_and_resolve(&url, &resolver)
            .await
            .unwrap();

        lookup.answers.lock().unwrap().insert(
            "hooks.partner.example".to_owned(),
            vec!["127.0.0.1".parse().unwrap()],
        );
        let sender = WebhookSender::with_resolver(resolver, Duration::from_secs(2)).unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let outcome = sender
            .deliver(&Delivery {
                url: &url,
                msg_id: "msg_rebind",
                body: BODY,
                keys: &keys,
            })
            .await;
        let (kind, message) = outcome.error.unwrap();
        assert_eq!(kind, ErrorKind::RefusedAddress, "{message}");
        assert!(message.contains("127.0.0.1"), "{message}");
        assert_eq!(
            lookup.lookups.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the sender resolved the name itself"
        );
        assert!(rx.requests().is_empty());
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_at_send() {
        let lookup = StaticLookup(HashMap::from([(
            "internal.example.com".to_owned(),
            vec!["10.0.0.1".parse().unwrap()],
        )]));
        let sender = WebhookSender::with_resolver(
            CheckedResolver::with_lookup(Policy::default(), Arc::new(lookup)),
            Duration::from_secs(2),
        )
        .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let outcome = sender
            .deliver(&Delivery {
                url: "https://internal.example.com/hook",
                msg_id: "msg_private",
                body: BODY,
                keys: &keys,
            })
            .await;
        assert_eq!(outcome.error.map(|e| e.0), Some(ErrorKind::RefusedAddress));
    }

    #[tokio::test]
    async fn a_large_response_body_is_cut_to_one_kibibyte() {
        let big = "x".repeat(50_000);
        let rx = Receiver::always(Reply::status(500).body(&big))
            .await
            .unwrap();
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = rx.url("/");
        let outcome = sender(Duration::from_secs(5))
            .deliver(&Delivery {
                url: &url,
                msg_id: "msg_big",
                body: BODY,
                keys: &keys,
            })
            .await;
        assert_eq!(outcome.response_excerpt.unwrap().len(), EXCERPT_BYTES);
        assert_eq!(outcome.error.unwrap().0, ErrorKind::HttpStatus);
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let keys = [SigningKey::parse(&generate_secret()).unwrap()];
        let url = format!("http://127.0.0.1:{port}/");
        let outcome = sender(Duration::from_secs(2))
            .deliver(&Delivery {
                url: &url,
                msg_id: "msg_closed",
                body: BODY,
                keys: &keys,
            })
            .await;
        assert_eq!(outcome.error.map(|e| e.0), Some(ErrorKind::Connect));
    }
}
