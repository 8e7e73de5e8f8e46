//! Microsoft Entra ID: the request sequence of Microsoft's tutorial
//! "Develop and plan provisioning for a SCIM endpoint", once with the
//! compliant bodies (`aadOptscim062020`) and once with the legacy forms.

use serde_json::{Value, json};

use crate::common::{App, TenantCtx, each_backend, enc, redacted};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

const USER_NAME: &str = "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee";
const EXTERNAL_ID: &str = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";
const EMAIL: &str = "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com";

fn create_user_body() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": EXTERNAL_ID,
        "userName": USER_NAME,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": EMAIL}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

fn empty_list() -> Value {
    json!({"schemas": [LIST], "totalResults": 0, "itemsPerPage": 0, "startIndex": 1, "Resources": []})
}

/// Runs the tutorial's sequence into a new tenant; `legacy` switches to the
/// forms Entra sends without the `aadOptscim062020` flag.
async fn replay(app: &App, legacy: bool) {
    let slug = if legacy { "entra-legacy" } else { "entra" };
    let t = app.tenant(slug).await;
    replay_into(app, &t, legacy).await;
}

/// Runs the tutorial's sequence into tenant `t`, checking every answer.
pub(crate) async fn replay_into(app: &App, t: &TenantCtx, legacy: bool) {
    let tok = t.token.as_str();
    // Entra keeps the flag in the tenant URL, so it rides on every request.
    let q = if legacy { "?x=1" } else { "?aadOptscim062020" };
    let base = app.scim();

    // Test connection: a user that does not exist.
    let r = app
        .call(
            "GET",
            &format!("/Users{q}&filter={}", enc("userName eq \"non-existent\"")),
            tok,
            None,
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (200, empty_list()));
    let r = app
        .call(
            "GET",
            &format!(
                "/Groups{q}&excludedAttributes=members&filter={}",
                enc("displayName eq \"non-existent\"")
            ),
            tok,
            None,
        )
        .await;
    assert_eq!((r.status, r.body.clone()), (200, empty_list()));

    // Create User.
    let r = app
        .call("POST", &format!("/Users{q}"), tok, Some(create_user_body()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let location = format!("{base}/Users/{id}");
    let expected_user = json!({
        "schemas": [USER, ENTERPRISE],
        "id": id,
        "externalId": EXTERNAL_ID,
        "userName": USER_NAME,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": EMAIL}],
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "groups": [],
        "meta": {
            "resourceType": "User",
            "created": "[ts]",
            "lastModified": "[ts]",
            "location": location,
            "version": "W/\"1\""
        }
    });
    assert_eq!(redacted(r.body.clone()), expected_user);

    // Get User; Get User by query (userName, then externalId).
    let r = app.call("GET", &format!("/Users/{id}{q}"), tok, None).await;
    assert_eq!(
        (r.status, redacted(r.body.clone())),
        (200, expected_user.clone())
    );
    for filter in [
        format!("userName eq \"{USER_NAME}\""),
        format!("externalId eq \"{EXTERNAL_ID}\""),
        format!("emails[type eq \"work\"].value eq \"{EMAIL}\""),
    ] {
        let r = app
            .call(
                "GET",
                &format!("/Users{q}&filter={}", enc(&filter)),
                tok,
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        assert_eq!(
            redacted(r.body.clone()),
            json!({
                "schemas": [LIST],
                "totalResults": 1,
                "itemsPerPage": 1,
                "startIndex": 1,
                "Resources": [expected_user.clone()]
            }),
            "{filter}"
        );
    }
    // Get User by query, zero results; Get User, not found.
    let r = app
        .call(
            "GET",
            &format!(
                "/Users{q}&filter={}",
                enc("userName eq \"non-existent user\"")
            ),
            tok,
            None,
        )
        .await;
    assert_eq!(r.body, empty_list());
    let r = app
        .call("GET", &format!("/Users/5171a35d82074e068ce2{q}"), tok, None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(r.body["status"], "404");

    // Update User [multi-valued properties].
    let op = if legacy { "Replace" } else { "replace" };
    let r = app
        .call(
            "PATCH",
            &format!("/Users/{id}{q}"),
            tok,
            Some(json!({"schemas": [PATCH], "Operations": [
                {"op": op, "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": op, "path": "name.familyName", "value": "updatedFamilyName"}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["emails"],
        json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}])
    );
    assert_eq!(r.body["name"]["familyName"], "updatedFamilyName");
    assert_eq!(r.body["name"]["givenName"], "givenName");

    // Update User [single-valued properties] (and, in the compliant form,
    // several attributes in one path-less replace).
    let new_name = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com";
    let ops = if legacy {
        json!([
            {"op": "Replace", "path": "userName", "value": new_name},
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "Eqpj"}
        ])
    } else {
        json!([
            {"op": "replace", "path": "userName", "value": new_name},
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "replace", "value": {
                "displayName": "Pvlo",
                "name.givenName": "Gtfd",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Eqpj"
            }}
        ])
    };
    let r = app
        .call(
            "PATCH",
            &format!("/Users/{id}{q}"),
            tok,
            Some(json!({"schemas": [PATCH], "Operations": ops})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], new_name);
    assert_eq!(r.body["nickName"], "Babs");
    assert_eq!(r.body["displayName"], "Pvlo");
    assert_eq!(r.body["name"]["givenName"], "Gtfd");
    assert_eq!(r.body[ENTERPRISE]["employeeNumber"], "Eqpj");
    let f = enc(&format!("userName eq \"{new_name}\""));
    let r = app
        .call("GET", &format!("/Users{q}&filter={f}"), tok, None)
        .await;
    assert_eq!(r.body["totalResults"], 1);

    // Disable User.
    let value = if legacy { json!("False") } else { json!(false) };
    let r = app
        .call(
            "PATCH",
            &format!("/Users/{id}{q}"),
            tok,
            Some(json!({"Operations": [{"op": op, "path": "active", "value": value}], "schemas": [PATCH]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    let r = app.call("GET", &format!("/Users/{id}{q}"), tok, None).await;
    assert_eq!(r.body["active"], false, "a disabled user is still returned");

    // Create Group (with Microsoft's extra schema URI), Get Group.
    let r = app
        .call(
            "POST",
            &format!("/Groups{q}"),
            tok,
            Some(json!({
                "schemas": [GROUP, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"}
            })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["displayName"], "displayName");
    assert_eq!(r.body["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert_eq!(r.body["members"], json!([]));
    let glocation = format!("{base}/Groups/{gid}");
    let r = app
        .call(
            "GET",
            &format!("/Groups/{gid}{q}&excludedAttributes=members"),
            tok,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let expected_group = json!({
        "schemas": r.body["schemas"].clone(),
        "id": gid,
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
        "displayName": "displayName",
        "meta": {
            "resourceType": "Group",
            "created": "[ts]",
            "lastModified": "[ts]",
            "location": glocation,
            "version": "W/\"1\""
        }
    });
    assert_eq!(redacted(r.body.clone()), expected_group);
    assert_eq!(r.body["schemas"][0], GROUP);

    // Get Group by displayName.
    let r = app
        .call(
            "GET",
            &format!(
                "/Groups{q}&excludedAttributes=members&filter={}",
                enc("displayName eq \"displayName\"")
            ),
            tok,
            None,
        )
        .await;
    assert_eq!(
        redacted(r.body.clone()),
        json!({"schemas": [LIST], "totalResults": 1, "itemsPerPage": 1, "startIndex": 1, "Resources": [expected_group]})
    );

    // Update Group [non-member attributes].
    let renamed = "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName";
    let r = app
        .call(
            "PATCH",
            &format!("/Groups/{gid}{q}"),
            tok,
            Some(json!({"schemas": [PATCH], "Operations": [{"op": op, "path": "displayName", "value": renamed}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], renamed);

    // Update Group [add members].
    let add = if legacy { "Add" } else { "add" };
    let r = app
        .call(
            "PATCH",
            &format!("/Groups/{gid}{q}"),
            tok,
            Some(json!({"schemas": [PATCH], "Operations": [
                {"op": add, "path": "members", "value": [{"$ref": null, "value": id}]}
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = app
        .call("GET", &format!("/Groups/{gid}{q}"), tok, None)
        .await;
    assert_eq!(
        g.body["members"].as_array().map(Vec::len),
        Some(1),
        "{}",
        g.body
    );
    assert_eq!(g.body["members"][0]["value"], id.as_str());
    let u = app.call("GET", &format!("/Users/{id}{q}"), tok, None).await;
    assert_eq!(u.body["groups"][0]["value"], gid.as_str());
    assert_eq!(u.body["groups"][0]["display"], renamed);

    // Update Group [remove members]: legacy names them in a value array,
    // compliant uses a value filter.
    let remove = if legacy {
        json!({"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]})
    } else {
        json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")})
    };
    let r = app
        .call(
            "PATCH",
            &format!("/Groups/{gid}{q}"),
            tok,
            Some(json!({"schemas": [PATCH], "Operations": [remove]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let g = app
        .call("GET", &format!("/Groups/{gid}{q}"), tok, None)
        .await;
    assert_eq!(g.body["members"], json!([]));
    let u = app.call("GET", &format!("/Users/{id}{q}"), tok, None).await;
    assert_eq!(u.body["groups"], json!([]));

    // Delete User, Delete Group.
    let r = app
        .call("DELETE", &format!("/Users/{id}{q}"), tok, None)
        .await;
    assert_eq!((r.status, r.body), (204, Value::Null));
    assert_eq!(
        app.call("GET", &format!("/Users/{id}{q}"), tok, None)
            .await
            .status,
        404
    );
    let r = app
        .call("DELETE", &format!("/Groups/{gid}{q}"), tok, None)
        .await;
    assert_eq!((r.status, r.body), (204, Value::Null));
    assert_eq!(
        app.call("GET", &format!("/Groups/{gid}{q}"), tok, None)
            .await
            .status,
        404
    );

    // Schema discovery.
    let r = app.call("GET", &format!("/Schemas{q}"), tok, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(r.body["totalResults"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_replay_compliant() {
    each_backend(|app: App| async move { replay(&app, false).await }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_replay_legacy() {
    each_backend(|app: App| async move { replay(&app, true).await }).await;
}
