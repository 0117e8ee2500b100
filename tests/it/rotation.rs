//! Issue 6: signing keys and client secrets rotate without a failed request, and partners
//! authenticate with `private_key_jwt` whose every known attack is refused.

use std::{
    collections::HashMap,
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::{DateTime, Utc};
use jsonwebtoken::{decode_header, encode, Algorithm, EncodingKey, Header};
use redress_api::{
    auth::keys::{self, KeySet, SigningKey},
    startup::Application,
};
use redress_shared::config::Settings;
use redress_tests::{Options, TestApp};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// A 2048-bit RSA test key (made with `openssl genrsa 2048`; used nowhere else).
const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCzFhrdVLYinRbC\ndnJZ9yz9O9iei1I02FIbhra4+3UnM8zS7bbSnX6AElYUMb/4urjli/DB382CKhNS\n9+h9D+BhxEdpZ1OXVa9FSWA2uCUHQPrW38qpgUryyyIOZLU0jh6iOZ5BzGDyZTHV\nA6YcdIk887V2LRoMNmxNCbOYrD8XjI9NmEu8OnyuscBd8k6ZMU0u71dqoATISdd8\njLSPXp18HFzxPwwJ8myQVgbFCwDb9lCTRkiczI1SkiFtp++TtvWIzrMRk3GfLdD5\nFZYu6tpYks5bGOu7hdu+DFt4opLTJVz6Hc/7xSzklsJI3zuAJar1URPQS7yKLTEW\nS9YAxZBzAgMBAAECggEAFBPLAzv3XL4RH9AOVeO42X3CH/7X7TDAqRwF6YsswS5f\ngi5AVtsX+Ye/ZW2Ga34+Mw3opJ5QozfQXswy9le3UilNJZX98HNyE5R8WDt2JfAK\nWdimbIZ1k+64wgsBqFiz5Sq3LAKbw9EbMG8Y9Qu47xUWJ5+QJ1panfBpKsP0zCY3\n+p3ZBXBzH4SNG5lLgn+ZIUxKIo2q9zd1viUk7Vdjscv95ARZdPy6LzS6wa3twAm+\neJvGmz86VAiZLIQUMLxSdDLnNwRhsdYUB3ZYQ6EerB1Xe/ztBHTwR42Q3oncuKVS\nnSE5aSZhXI2sfYB+n14FltKpwxqwvmlSEBu8bdCJkQKBgQDXOhm5glYjmDMWh/PC\nDrdsmYXLaKCDPbAhgBH3ZS6VQvPO6Uq2WvZwhn0jGekzMJyWccVaTmFr5EAXrhqx\nitJrbKtnewZTbbu6+SXy+coBCtJrcF1CZxxHUibpGd4ZWDrV5riMrspRO6MdBMX0\nby04zhINHINZa8DbtjkT/EAldQKBgQDVA0l71emIFHw50sxKZMjGGGTl02iniRNk\n6OPnJRD8c5ypQSJkRVXQdt9lA1pQj/tbC3l6jACwkRWUOGN574JthVagj28m2Yi9\nAS1pTNHKyhexUBZhNDI5X0/XXRHN67weseNxoNd2oWPBfnXodj88ZYkyfvIWYV15\nWkvhh+/ZRwKBgQCQzcFTA3Lq/dKZfRyuWnJkOaI/6YPc6Nsgnub3mPbPa71XX7Rp\nnieiK4nz3NH+I92mhqMuEAARs/6/L987xlet+O4VcDsgVHry3//9SrvzGZHawT2t\nmGv5PDd7q3C3gpoLIfDWjh8GqmYi9vwsacR2LIcOlTl2Jz4ZVK9wV83cpQKBgGTg\n6qMf+jn84ZwMzb0Jn9/Y26fQCAcXrryiYpQsBLBaHD433463G13ffgp7nQD8PyCt\n/Xjg5s631w1b6xhrKkyt0gm2BADVEqHX9eahf9VXAgNyFzcvnf13uvsWU4E++9dZ\njYpZjtDau8B+IF7X6Ti0KVZlskaRE9CNx9PmKduvAoGBAKHbG0RXu1qOTxddOJt9\n7EezSdYyhlZbD7odQ3TQgCQ1FNXypHRcgId9trn9kuwYSuNj9bpXFpM0pIwpRVyy\nBE1tV43lWd4vWQT34ZU4PLGkvgegcZl1uTehyLNA/3SuvE/fGHzNXbZ7yJmUaMqq\nSm+/7jIxuwnFfgNkavAvq9g6\n-----END PRIVATE KEY-----";
const RSA_N: &str = "sxYa3VS2Ip0WwnZyWfcs_TvYnotSNNhSG4a2uPt1JzPM0u220p1-gBJWFDG_-Lq45Yvwwd_NgioTUvfofQ_gYcRHaWdTl1WvRUlgNrglB0D61t_KqYFK8ssiDmS1NI4eojmeQcxg8mUx1QOmHHSJPPO1di0aDDZsTQmzmKw_F4yPTZhLvDp8rrHAXfJOmTFNLu9XaqAEyEnXfIy0j16dfBxc8T8MCfJskFYGxQsA2_ZQk0ZInMyNUpIhbafvk7b1iM6zEZNxny3Q-RWWLuraWJLOWxjru4XbvgxbeKKS0yVc-h3P-8Us5JbCSN87gCWq9VET0Eu8ii0xFkvWAMWQcw";

/// Tokens handed out during the stream: when, the kid that signed it, the token.
type Issued = Arc<Mutex<Vec<(DateTime<Utc>, String, String)>>>;
/// For each (process, kid): when the JWKS first and last showed it.
type Seen = Arc<Mutex<HashMap<(usize, String), (DateTime<Utc>, DateTime<Utc>)>>>;

fn fast_rotation(s: &mut Settings) {
    s.token.lifetime_secs = 3;
    s.token.leeway_secs = 1;
    s.signing_keys.publish_lead_secs = 2;
    s.signing_keys.reload_interval_ms = 200;
    s.signing_keys.jwks_max_age_secs = 1;
}

async fn audit_actions(app: &TestApp) -> Vec<(String, Option<String>)> {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        target: Option<String>,
    }
    let mut db = app.db().await;
    diesel::sql_query("SELECT action, target FROM audit_log ORDER BY id")
        .load::<Row>(&mut db)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.action, r.target))
        .collect()
}

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

fn exp_of(token: &str) -> i64 {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_i64().unwrap()
}

async fn jwks_kids(http: &reqwest::Client, base: &str) -> Vec<String> {
    let jwks: Value = http
        .get(format!("{base}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn token_from(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    secret: &str,
) -> Result<String, String> {
    let r = http
        .post(format!("{base}/oauth/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let body: Value = r.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("token: {status} {body}"));
    }
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn call(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    http.get(format!("{base}/v1/complaints"))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// A second API process on the same database, starting with a key of its own that the
/// shared set (already bootstrapped) does not take.
async fn second_api(settings: &Settings) -> (String, CancellationToken) {
    let key = SigningKey::from_pem(&keys::generate_ed25519_pem().unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let shutdown = CancellationToken::new();
    let app = Application::build_with(
        settings.clone(),
        KeySet::new(key, Vec::new()),
        listener,
        shutdown.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    (base, shutdown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_signing_key_rotates_across_two_api_processes_without_a_failed_request() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(fast_rotation),
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(None).await;
    redress_api::admin::set_hub_admin(&app.database_url, &t.client_id, true)
        .await
        .unwrap();
    let (b_base, b_stop) = second_api(&app.settings).await;
    let bases = [app.base.clone(), b_base.clone()];
    let old_kid = app.kid.clone();
    assert_eq!(
        jwks_kids(&app.http, &b_base).await,
        vec![old_kid.clone()],
        "B serves the shared set, not its own key"
    );

    // A steady stream: each task takes a token from one process and uses it at both.
    let stop = Arc::new(AtomicBool::new(false));
    let issued: Issued = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for i in 0..2 {
        let (http, bases, stop, issued, failures) = (
            app.http.clone(),
            bases.clone(),
            stop.clone(),
            issued.clone(),
            failures.clone(),
        );
        let (client, secret) = (t.client_id.clone(), t.client_secret.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match token_from(&http, &bases[i], &client, &secret).await {
                    Ok(token) => {
                        issued
                            .lock()
                            .unwrap()
                            .push((Utc::now(), kid_of(&token), token.clone()));
                        for base in &bases {
                            let status = call(&http, base, &token).await;
                            if status != 200 {
                                failures.lock().unwrap().push(format!(
                                    "{status} at {base} with a token of kid {}",
                                    kid_of(&token)
                                ));
                            }
                        }
                    }
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    // And a watcher of both JWKS: when each kid was first and last seen at each process.
    let seen: Seen = Arc::default();
    {
        let (http, bases, stop, seen) =
            (app.http.clone(), bases.clone(), stop.clone(), seen.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, base) in bases.iter().enumerate() {
                    let kids = jwks_kids(&http, base).await;
                    let now = Utc::now();
                    let mut seen = seen.lock().unwrap();
                    for kid in kids {
                        seen.entry((i, kid))
                            .and_modify(|e| e.1 = now)
                            .or_insert((now, now));
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;

    // Only hub operators rotate.
    let tenant_admin = app
        .token(&t.client_id, &t.client_secret, Some("tenant:admin"))
        .await;
    let r = app
        .http
        .post(app.url("/v1/hub/signing-keys/rotate"))
        .bearer_auth(&tenant_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let hub = app
        .token(&t.client_id, &t.client_secret, Some("hub:admin"))
        .await;
    let r = app
        .http
        .post(app.url("/v1/hub/signing-keys/rotate"))
        .bearer_auth(&hub)
        .json(&json!({"algorithm": "ES256"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rotated: Value = r.json().await.unwrap();
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous_kid"], json!(old_kid));
    assert!(
        jwks_kids(&app.http, &app.base).await.contains(&new_kid),
        "published at once by the process that rotated"
    );
    // A second rotation while the first waits is refused.
    let r = app
        .http
        .post(app.url("/v1/hub/signing-keys/rotate"))
        .bearer_auth(&hub)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    // Wait for the switch, then for the old key to leave both JWKS.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let gone = loop {
        let switched = issued.lock().unwrap().iter().any(|(_, k, _)| *k == new_kid);
        if switched {
            let a = jwks_kids(&app.http, &app.base).await;
            let b = jwks_kids(&app.http, &b_base).await;
            if !a.contains(&old_kid) && !b.contains(&old_kid) {
                break Utc::now();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old key never left the JWKS"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    b_stop.cancel();

    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "failed requests during the rotation: {failures:?}"
    );
    let issued = issued.lock().unwrap().clone();
    let first_new = issued
        .iter()
        .filter(|(_, k, _)| *k == new_kid)
        .map(|(at, ..)| *at)
        .min()
        .unwrap();
    let (_, _, last_old_token) = issued
        .iter()
        .filter(|(_, k, _)| *k == old_kid)
        .max_by_key(|(at, ..)| *at)
        .unwrap()
        .clone();
    assert!(
        issued.len() >= 10,
        "a stream, not a trickle: {}",
        issued.len()
    );
    let seen = seen.lock().unwrap().clone();
    for process in 0..2 {
        let (first_published, _) = seen[&(process, new_kid.clone())];
        assert!(
            first_published < first_new,
            "process {process} published the new key at {first_published}, after a token carried it at {first_new}"
        );
        let (_, last_published_old) = seen[&(process, old_kid.clone())];
        // Published until the last token it signed has expired.
        assert!(
            last_published_old.timestamp() >= exp_of(&last_old_token),
            "process {process} dropped the old key at {last_published_old}, before its last token expired ({})",
            exp_of(&last_old_token)
        );
    }
    assert!(gone.timestamp() >= exp_of(&last_old_token));
    // Gone from the JWKS, the old key verifies nothing any more.
    assert_eq!(call(&app.http, &app.base, &last_old_token).await, 401);

    let listed = redress_api::admin::list_signing_keys(&app.settings)
        .await
        .unwrap();
    let states: Vec<(String, keys::KeyState)> =
        listed.iter().map(|k| (k.kid.clone(), k.state)).collect();
    assert_eq!(
        states,
        vec![
            (old_kid.clone(), keys::KeyState::Expired),
            (new_kid.clone(), keys::KeyState::Current)
        ]
    );
    let audit = audit_actions(&app).await;
    assert!(
        audit.contains(&("signing_key.bootstrapped".into(), Some(old_kid.clone()))),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("signing_key.rotated".into(), Some(new_kid.clone()))),
        "{audit:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_from_the_admin_command_is_published_before_it_signs_and_audited() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        tweak: Box::new(fast_rotation),
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(None).await;
    let rotated = redress_api::admin::rotate_signing_key(
        &app.settings,
        redress_api::auth::rotation::NewKeyAlgorithm::EdDSA,
    )
    .await
    .unwrap();
    // Within one reload the API publishes it, and still signs with the old key.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kids = jwks_kids(&app.http, &app.base).await;
    assert_eq!(kids, vec![app.kid.clone(), rotated.kid.clone()]);
    let token = app.token(&t.client_id, &t.client_secret, None).await;
    if Utc::now() < rotated.activates_at {
        assert_eq!(kid_of(&token), app.kid);
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let token = app.token(&t.client_id, &t.client_secret, None).await;
    assert_eq!(kid_of(&token), rotated.kid);
    let audit = audit_actions(&app).await;
    assert!(audit.contains(&("signing_key.rotated".into(), Some(rotated.kid.clone()))));
    // A tenant admin cannot make a hub operator.
    let r = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&token)
        .json(&json!({"name": "sneaky", "scopes": ["hub:admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    app.stop().await;
}

async fn token_status(app: &TestApp, client: &str, secret: &str) -> u16 {
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_secret_works_beside_the_old_one_until_the_overlap_ends() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(None).await;
    let admin = app.token(&t.client_id, &t.client_secret, None).await;
    let r = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "partner app", "scopes": ["complaints:write"]}))
        .send()
        .await
        .unwrap();
    let partner: Value = r.json().await.unwrap();
    let partner_id = partner["client_id"].as_str().unwrap().to_owned();
    let old = partner["client_secret"].as_str().unwrap().to_owned();

    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{partner_id}/rotate-secret")))
        .bearer_auth(&admin)
        .json(&json!({"previous_secret_expires_in": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    // During the overlap, both.
    assert_eq!(token_status(&app, &partner_id, &old).await, 200);
    assert_eq!(token_status(&app, &partner_id, &new).await, 200);
    assert_eq!(token_status(&app, &partner_id, "rcs_wrong").await, 401);
    // After it, only the new one.
    let until: DateTime<Utc> = rotated["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(200);
    tokio::time::sleep(wait).await;
    assert_eq!(token_status(&app, &partner_id, &old).await, 401);
    assert_eq!(token_status(&app, &partner_id, &new).await, 200);

    // Bad input names the field; another tenant's client is 404.
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{partner_id}/rotate-secret")))
        .bearer_auth(&admin)
        .json(&json!({"previous_secret_expires_in": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["pointer"], "/previous_secret_expires_in");
    let other = app.create_tenant(None).await;
    let other_admin = app
        .token(&other.client_id, &other.client_secret, None)
        .await;
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{partner_id}/rotate-secret")))
        .bearer_auth(&other_admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // The admin command, with no overlap (a leaked secret): the old one stops at once.
    let by_cli = redress_api::admin::rotate_client_secret(&app.settings, &partner_id, Some(0))
        .await
        .unwrap();
    assert_eq!(token_status(&app, &partner_id, &new).await, 401);
    assert_eq!(
        token_status(&app, &partner_id, &by_cli.client_secret).await,
        200
    );

    // A tenant admin may not touch a hub operator's client.
    redress_api::admin::set_hub_admin(&app.database_url, &t.client_id, true)
        .await
        .unwrap();
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{}/rotate-secret", t.client_id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);

    let audit = audit_actions(&app).await;
    let rotations = audit
        .iter()
        .filter(|(a, target)| {
            a == "client.secret_rotated" && target.as_deref() == Some(&partner_id)
        })
        .count();
    assert_eq!(rotations, 2, "{audit:?}");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------
// private_key_jwt
// ---------------------------------------------------------------------------------------

struct PartnerKeys {
    ed: EncodingKey,
    ed_jwk: Value,
    ec: EncodingKey,
    ec_jwk: Value,
    rsa: EncodingKey,
    rsa_jwk: Value,
}

fn partner_keys() -> PartnerKeys {
    let ed_pem = keys::generate_ed25519_pem().unwrap();
    let ec_pem = keys::generate_p256_pem().unwrap();
    let mut ed_jwk = SigningKey::from_pem(&ed_pem).unwrap().jwk().clone();
    ed_jwk["kid"] = json!("partner-ed");
    let mut ec_jwk = SigningKey::from_pem(&ec_pem).unwrap().jwk().clone();
    ec_jwk["kid"] = json!("partner-ec");
    PartnerKeys {
        ed: EncodingKey::from_ed_pem(ed_pem.as_bytes()).unwrap(),
        ed_jwk,
        ec: EncodingKey::from_ec_pem(ec_pem.as_bytes()).unwrap(),
        ec_jwk,
        rsa: EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap(),
        rsa_jwk: json!({"kty": "RSA", "n": RSA_N, "e": "AQAB", "kid": "partner-rsa", "alg": "RS256"}),
    }
}

fn assertion_claims(app: &TestApp, client: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": client,
        "sub": client,
        "aud": format!("{}/oauth/token", app.settings.token.issuer),
        "iat": now,
        "exp": now + 60,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign_assertion(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

async fn with_assertion(app: &TestApp, assertion: &str, client_id: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ];
    if let Some(id) = client_id {
        form.push(("client_id", id));
    }
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A tenant, a partner client with its Ed25519, P-256 and RSA public keys registered.
async fn partner_with_keys(app: &TestApp) -> (String, String, PartnerKeys) {
    let t = app.create_tenant(None).await;
    let admin = app.token(&t.client_id, &t.client_secret, None).await;
    let partner: Value = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&admin)
        .json(&json!({"name": "partner app", "scopes": ["complaints:write", "complaints:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = partner["client_id"].as_str().unwrap().to_owned();
    let keys = partner_keys();
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{id}/keys")))
        .bearer_auth(&admin)
        .json(&json!({"keys": [keys.ed_jwk, keys.ec_jwk, keys.rsa_jwk]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    (id, admin, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_signed_with_a_registered_eddsa_es256_or_rs256_key_gets_a_token() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (id, admin, keys) = partner_with_keys(&app).await;
    for (alg, kid, key) in [
        (Algorithm::EdDSA, "partner-ed", &keys.ed),
        (Algorithm::ES256, "partner-ec", &keys.ec),
        (Algorithm::RS256, "partner-rsa", &keys.rsa),
    ] {
        let jwt = sign_assertion(alg, Some(kid), &assertion_claims(&app, &id), key);
        let (status, body) = with_assertion(&app, &jwt, None).await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        let token = body["access_token"].as_str().unwrap();
        assert_eq!(call(&app.http, &app.base, token).await, 200);
    }
    // No kid: the key of the assertion's algorithm; the issuer as audience; client_id given.
    let mut claims = assertion_claims(&app, &id);
    claims["aud"] = json!(app.settings.token.issuer);
    let jwt = sign_assertion(Algorithm::EdDSA, None, &claims, &keys.ed);
    let (status, body) = with_assertion(&app, &jwt, Some(&id)).await;
    assert_eq!(status, 200, "{body}");

    // The keys are listed, and a removed key no longer works.
    let (status, listed) = app
        .get_json(&admin, &format!("/v1/clients/{id}/keys"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);
    assert!(listed["data"][0]["jwk"].get("d").is_none());
    let r = app
        .http
        .delete(app.url(&format!("/v1/clients/{id}/keys/partner-rsa")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let jwt = sign_assertion(
        Algorithm::RS256,
        Some("partner-rsa"),
        &assertion_claims(&app, &id),
        &keys.rsa,
    );
    assert_eq!(with_assertion(&app, &jwt, None).await.0, 401);

    // Registration refuses private keys (naming the member) and duplicate kids.
    let mut private = keys.ed_jwk.clone();
    private["kid"] = json!("another");
    private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{id}/keys")))
        .bearer_auth(&admin)
        .json(&private)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["pointer"],
        "/d"
    );
    let r = app
        .http
        .post(app.url(&format!("/v1/clients/{id}/keys")))
        .bearer_auth(&admin)
        .json(&keys.ed_jwk)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let audit = audit_actions(&app).await;
    assert!(audit.contains(&("client.keys_added".into(), Some(id.clone()))));
    assert!(audit.contains(&("client.key_removed".into(), Some(id.clone()))));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_private_key_jwt_attack_is_refused_with_invalid_client() {
    let app = TestApp::spawn_with(Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (id, _, keys) = partner_with_keys(&app).await;
    let (other_id, _, _) = partner_with_keys(&app).await;
    let now = Utc::now().timestamp();
    let good = assertion_claims(&app, &id);
    let sign =
        |claims: &Value| sign_assertion(Algorithm::EdDSA, Some("partner-ed"), claims, &keys.ed);

    // Accepted once...
    let once = sign(&good);
    assert_eq!(with_assertion(&app, &once, None).await.0, 200);

    let mut cases: Vec<(&str, String, Option<String>)> = Vec::new();
    cases.push(("replayed jti", once.clone(), None));
    let mut c = assertion_claims(&app, &id);
    c["iat"] = json!(now - 200);
    c["exp"] = json!(now - 100);
    cases.push(("expired", sign(&c), None));
    let mut c = assertion_claims(&app, &id);
    c["exp"] = json!(now + 3600);
    cases.push(("lives an hour", sign(&c), None));
    let mut c = assertion_claims(&app, &id);
    c["aud"] = json!("https://evil.example/oauth/token");
    cases.push(("wrong audience", sign(&c), None));
    let mut c = assertion_claims(&app, &id);
    c.as_object_mut().unwrap().remove("jti");
    cases.push(("no jti", sign(&c), None));
    let mut c = assertion_claims(&app, &id);
    c.as_object_mut().unwrap().remove("iat");
    cases.push(("no iat", sign(&c), None));
    let mut c = assertion_claims(&app, &id);
    c["iss"] = json!(other_id);
    cases.push(("iss is not sub", sign(&c), None));
    // Signed by the partner for itself, presented as another client.
    cases.push((
        "another client's id",
        sign(&assertion_claims(&app, &id)),
        Some(other_id.clone()),
    ));
    // A key the partner never registered, under a registered kid and under a new one.
    let stranger_pem = keys::generate_ed25519_pem().unwrap();
    let stranger = EncodingKey::from_ed_pem(stranger_pem.as_bytes()).unwrap();
    let stranger_jwk = SigningKey::from_pem(&stranger_pem).unwrap().jwk().clone();
    cases.push((
        "unknown key under a registered kid",
        sign_assertion(
            Algorithm::EdDSA,
            Some("partner-ed"),
            &assertion_claims(&app, &id),
            &stranger,
        ),
        None,
    ));
    cases.push((
        "unknown kid",
        sign_assertion(
            Algorithm::EdDSA,
            Some("not-registered"),
            &assertion_claims(&app, &id),
            &stranger,
        ),
        None,
    ));
    // Keys pointed to or carried by the assertion itself.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("not-registered".into());
    h.jku = Some("https://evil.example/jwks.json".into());
    cases.push((
        "jku pointing elsewhere",
        encode(&h, &assertion_claims(&app, &id), &stranger).unwrap(),
        None,
    ));
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("partner-ed".into());
    h.jku = Some("https://evil.example/jwks.json".into());
    cases.push((
        "jku even with a registered key",
        encode(&h, &assertion_claims(&app, &id), &keys.ed).unwrap(),
        None,
    ));
    let mut h = Header::new(Algorithm::EdDSA);
    h.x5u = Some("https://evil.example/cert.pem".into());
    cases.push((
        "x5u pointing elsewhere",
        encode(&h, &assertion_claims(&app, &id), &stranger).unwrap(),
        None,
    ));
    let mut h = Header::new(Algorithm::EdDSA);
    h.jwk = Some(serde_json::from_value(stranger_jwk).unwrap());
    cases.push((
        "an embedded jwk",
        encode(&h, &assertion_claims(&app, &id), &stranger).unwrap(),
        None,
    ));
    // Algorithms.
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "partner-ed"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(assertion_claims(&app, &id).to_string());
    cases.push(("alg none", format!("{header}.{payload}."), None));
    let x = keys.ed_jwk["x"].as_str().unwrap();
    cases.push((
        "HS256 keyed with the public key",
        sign_assertion(
            Algorithm::HS256,
            Some("partner-ed"),
            &assertion_claims(&app, &id),
            &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(x).unwrap()),
        ),
        None,
    ));
    cases.push((
        "ES256 header on the Ed25519 key",
        sign_assertion(
            Algorithm::ES256,
            Some("partner-ed"),
            &assertion_claims(&app, &id),
            &keys.ec,
        ),
        None,
    ));
    cases.push(("not a JWT", "garbage".into(), Some(id.clone())));

    for (what, jwt, client_id) in &cases {
        let r = app
            .http
            .post(app.url("/oauth/token"))
            .form(&{
                let mut f = vec![
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", jwt.as_str()),
                ];
                if let Some(c) = client_id {
                    f.push(("client_id", c.as_str()));
                }
                f
            })
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{what} was not refused");
        assert!(r.headers().contains_key("www-authenticate"), "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    }

    // Two methods at once, or a wrong assertion type.
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some("rcs_anything"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                sign(&assertion_claims(&app, &id)).as_str(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let jwt = sign(&assertion_claims(&app, &id));
    let r = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // And the unused assertion still works: none of the above spent its jti.
    assert_eq!(with_assertion(&app, &jwt, None).await.0, 200);
    app.stop().await;
}
