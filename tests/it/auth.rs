//! CONTRACT §1: tokens, scopes, tenant walls.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::Utc;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use redress_tests::{example_complaint, TestApp};
use serde_json::{json, Value};

fn claims(app: &TestApp, tenant: &str, client: &str) -> Value {
    let now = Utc::now().timestamp();
    json!({
        "iss": app.settings.token.issuer,
        "aud": app.settings.token.audience,
        "sub": client,
        "tid": tenant,
        "scope": "complaints:read complaints:write",
        "iat": now,
        "exp": now + 300,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn sign(app: &TestApp, claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.unwrap_or(&app.kid).to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_ed_pem(app.signing_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn status_with(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(app.url("/v1/complaints"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_token_is_refused_with_401_and_a_good_one_passes() {
    let app = TestApp::spawn_with(redress_tests::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(Some("cn-pos")).await;
    let good = claims(&app, &t.tenant_id, &t.client_id);
    assert_eq!(
        status_with(&app, &sign(&app, &good, None)).await,
        200,
        "a well-formed token passes"
    );

    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut c = good.clone();
    c["iat"] = json!(Utc::now().timestamp() - 900);
    c["exp"] = json!(Utc::now().timestamp() - 120);
    cases.push(("expired", sign(&app, &c, None)));
    let mut c = good.clone();
    c["aud"] = json!("someone-else");
    cases.push(("wrong aud", sign(&app, &c, None)));
    let mut c = good.clone();
    c["iss"] = json!("https://evil.example");
    cases.push(("wrong iss", sign(&app, &c, None)));
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("tid");
    cases.push(("missing tid", sign(&app, &c, None)));
    let mut c = good.clone();
    c.as_object_mut().unwrap().remove("exp");
    cases.push(("missing exp", sign(&app, &c, None)));
    let mut c = good.clone();
    c["exp"] = json!((Utc::now().timestamp() + 300).to_string());
    cases.push(("exp as a string", sign(&app, &c, None)));
    let mut c = good.clone();
    c["exp"] = json!(Utc::now().timestamp() + 3600);
    cases.push(("lifetime over 15 minutes", sign(&app, &c, None)));
    cases.push(("unknown kid", sign(&app, &good, Some("not-a-key-we-have"))));

    // alg: none, unsigned.
    let header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": app.kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(good.to_string());
    cases.push(("alg none", format!("{header}.{payload}.")));

    // HS256 keyed with the public key from the JWKS (the classic algorithm confusion).
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let mut h = Header::new(Algorithm::HS256);
    h.typ = Some("at+jwt".into());
    h.kid = Some(app.kid.clone());
    cases.push((
        "HS256 signed with the public key",
        encode(
            &h,
            &good,
            &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&x).unwrap()),
        )
        .unwrap(),
    ));
    cases.push((
        "HS256 signed with the public key text",
        encode(&h, &good, &EncodingKey::from_secret(x.as_bytes())).unwrap(),
    ));

    // Wrong typ (an ID token, say).
    let mut h = Header::new(Algorithm::EdDSA);
    h.typ = Some("JWT".into());
    h.kid = Some(app.kid.clone());
    cases.push((
        "typ JWT",
        encode(
            &h,
            &good,
            &EncodingKey::from_ed_pem(app.signing_pem.as_bytes()).unwrap(),
        )
        .unwrap(),
    ));

    // A token signed by a key we never published.
    let other = redress_api::auth::keys::generate_ed25519_pem().unwrap();
    let mut h = Header::new(Algorithm::EdDSA);
    h.typ = Some("at+jwt".into());
    h.kid = Some(app.kid.clone());
    cases.push((
        "signed by another key",
        encode(
            &h,
            &good,
            &EncodingKey::from_ed_pem(other.as_bytes()).unwrap(),
        )
        .unwrap(),
    ));
    cases.push(("garbage", "not.a.token".into()));

    for (name, token) in &cases {
        let r = app
            .http
            .get(app.url("/v1/complaints"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{name} must be refused");
        assert!(
            r.headers()
                .get("www-authenticate")
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{name}: WWW-Authenticate: Bearer"
        );
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
    }
    let r = app
        .http
        .get(app.url("/v1/complaints"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token at all");
    assert_eq!(r.headers().get("www-authenticate").unwrap(), "Bearer");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_follows_rfc_6749_and_narrows_scopes() {
    let app = TestApp::spawn_with(redress_tests::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let t = app.create_tenant(Some("cn-pos")).await;

    let wrong = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&t.client_id, Some("rcs_wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        wrong.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let unknown = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "cli_nobody"),
            ("client_secret", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);

    let grant = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&t.client_id, Some(&t.client_secret))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status(), 400);
    assert_eq!(
        grant.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );

    let scope = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(&t.client_id, Some(&t.client_secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "complaints:read root"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(scope.status(), 400);
    assert_eq!(
        scope.json::<Value>().await.unwrap()["error"],
        "invalid_scope"
    );

    // Form-field client authentication works too, and a narrowed token is narrowed.
    let ok: Value = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", t.client_id.as_str()),
            ("client_secret", t.client_secret.as_str()),
            ("scope", "complaints:read"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["token_type"], "Bearer");
    assert_eq!(ok["scope"], "complaints:read");
    assert!(ok["expires_in"].as_i64().unwrap() <= 900);
    let token = ok["access_token"].as_str().unwrap();
    // The token's header names the published key.
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    let jwks: Value = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "the JWKS never carries the private part"
    );

    // Missing scope: 403, not 401.
    let r = app.file(token, &example_complaint()).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_complaint_is_404_with_no_data_and_partners_see_only_their_own() {
    let app = TestApp::spawn_with(redress_tests::Options {
        worker: false,
        ..Default::default()
    })
    .await;
    let (a, token_a) = app.tenant_and_token().await;
    let (_b, token_b) = app.tenant_and_token().await;
    let r = app.file(&token_a, &example_complaint()).await;
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    for path in [
        format!("/v1/complaints/{id}"),
        format!("/v1/complaints/{id}/events"),
    ] {
        let (status, body) = app.get_json(&token_b, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            !body.to_string().contains("张三"),
            "no data of the other tenant leaks: {body}"
        );
    }
    let (_, list) = app.get_json(&token_b, "/v1/complaints").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // A second partner app of the same tenant sees nothing of the first's...
    let admin_token = app
        .token(&a.client_id, &a.client_secret, Some("tenant:admin"))
        .await;
    let created: Value = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "Second partner app", "scopes": ["complaints:read", "complaints:write"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partner2 = app
        .token(
            created["client_id"].as_str().unwrap(),
            created["client_secret"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(
        app.get_json(&partner2, &format!("/v1/complaints/{id}"))
            .await
            .0,
        404
    );
    // ...while an operator of the tenant sees the case.
    let ops: Value = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&admin_token)
        .json(&json!({"name": "Operator console", "scopes": ["complaints:read", "cases:operate"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operator = app
        .token(
            ops["client_id"].as_str().unwrap(),
            ops["client_secret"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(
        app.get_json(&operator, &format!("/v1/complaints/{id}"))
            .await
            .0,
        200
    );

    // Creating clients needs tenant:admin, and bad scopes are named.
    let r = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&token_a)
        .json(&json!({"name": "x", "scopes": ["complaints:read", "superuser"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["pointer"],
        "/scopes/1"
    );
    let r = app
        .http
        .post(app.url("/v1/clients"))
        .bearer_auth(&partner2)
        .json(&json!({"name": "x", "scopes": ["tenant:admin"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}
