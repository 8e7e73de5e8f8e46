//! Tenant kinds and the links between super tenants and their children.

use store::fanout::OnUnroute;
use store::{AuditQuery, StoreError, TenantKind};
use testkit::backends;

use crate::common::*;

#[tokio::test]
async fn a_super_tenant_feeds_children_and_every_change_is_audited() {
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let msp = tenant(&store, "msp").await;
        let acme = tenant(&store, "acme").await;
        let globex = tenant(&store, "globex").await;

        // Only a super tenant can feed children.
        let e = admin
            .link_child(msp.id(), acme.id(), OnUnroute::Deactivate, "op")
            .await
            .expect_err("msp is standard");
        assert!(matches!(e, StoreError::InvalidValue(_)), "{which:?}: {e}");
        assert!(e.to_string().contains("'msp' is not a super tenant"), "{e}");

        let msp = admin
            .set_tenant_kind(msp.id(), TenantKind::Super, "op")
            .await
            .expect("super");
        assert_eq!(msp.kind(), TenantKind::Super);
        let link = admin
            .link_child(msp.id(), acme.id(), OnUnroute::Deactivate, "op")
            .await
            .expect("linked");
        assert_eq!((link.super_tenant, link.child), (msp.id(), acme.id()));
        admin
            .link_child(msp.id(), globex.id(), OnUnroute::Delete, "op")
            .await
            .expect("linked");
        // Linking again to the same super tenant changes nothing.
        let again = admin
            .link_child(msp.id(), acme.id(), OnUnroute::Delete, "op")
            .await
            .expect("idempotent");
        assert_eq!(again.on_unroute, OnUnroute::Deactivate, "{which:?}");

        // Listed by link time, then child id: the two links may share a
        // timestamp, so compare them in child order.
        let mut children: Vec<_> = admin
            .children(msp.id())
            .await
            .expect("children")
            .into_iter()
            .map(|l| (l.child, l.on_unroute))
            .collect();
        children.sort_by_key(|(child, _)| *child);
        let mut expected = [
            (acme.id(), OnUnroute::Deactivate),
            (globex.id(), OnUnroute::Delete),
        ];
        expected.sort_by_key(|(child, _)| *child);
        assert_eq!(children, expected, "{which:?}");
        assert_eq!(
            admin
                .super_of(acme.id())
                .await
                .expect("read")
                .map(|l| l.super_tenant),
            Some(msp.id())
        );
        assert_eq!(admin.super_of(msp.id()).await.expect("read"), None);

        // A tenant has at most one super tenant; a child cannot be super, a
        // super tenant cannot be a child, nor its own child.
        let other = tenant(&store, "other-msp").await;
        let other = admin
            .set_tenant_kind(other.id(), TenantKind::Super, "op")
            .await
            .expect("super");
        let e = admin
            .link_child(other.id(), acme.id(), OnUnroute::Deactivate, "op")
            .await
            .expect_err("already fed");
        assert!(matches!(e, StoreError::Uniqueness(_)), "{which:?}: {e}");
        let e = admin
            .set_tenant_kind(acme.id(), TenantKind::Super, "op")
            .await
            .expect_err("a child");
        assert!(e.to_string().contains("unlink it"), "{which:?}: {e}");
        let e = admin
            .link_child(msp.id(), other.id(), OnUnroute::Deactivate, "op")
            .await
            .expect_err("super as child");
        assert!(
            e.to_string().contains("cannot be a child"),
            "{which:?}: {e}"
        );
        let e = admin
            .link_child(msp.id(), msp.id(), OnUnroute::Deactivate, "op")
            .await
            .expect_err("own child");
        assert!(e.to_string().contains("its own child"), "{which:?}: {e}");
        let e = admin
            .set_tenant_kind(msp.id(), TenantKind::Standard, "op")
            .await
            .expect_err("has children");
        assert!(e.to_string().contains("still feeds"), "{which:?}: {e}");

        // Unlinking: the child is standalone again, and can be linked
        // elsewhere.
        admin
            .unlink_child(acme.id(), store::fanout::CopiesOnUnlink::Keep, "op")
            .await
            .expect("unlinked");
        assert_eq!(admin.super_of(acme.id()).await.expect("read"), None);
        let e = admin
            .unlink_child(acme.id(), store::fanout::CopiesOnUnlink::Keep, "op")
            .await
            .expect_err("not linked");
        assert!(matches!(e, StoreError::NotFound(_)), "{which:?}: {e}");
        admin
            .link_child(other.id(), acme.id(), OnUnroute::Deactivate, "op")
            .await
            .expect("linked elsewhere");

        // Deleting the super tenant removes its links: globex is standalone.
        admin.delete_tenant(msp.id(), "op").await.expect("deleted");
        assert_eq!(
            admin.super_of(globex.id()).await.expect("read"),
            None,
            "{which:?}"
        );
        // Deleting a child removes its link.
        admin.delete_tenant(acme.id(), "op").await.expect("deleted");
        assert!(
            admin
                .children(other.id())
                .await
                .expect("children")
                .is_empty(),
            "{which:?}"
        );

        let log = admin
            .audit_log(&AuditQuery {
                tenant: Some(globex.id()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .expect("audit");
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        assert!(actions.contains(&"tenant.link"), "{which:?}: {actions:?}");
        let log = admin
            .audit_log(&AuditQuery {
                action: Some("tenant.kind".into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(log.len(), 2, "{which:?}: msp and other-msp became super");
        let log = admin
            .audit_log(&AuditQuery {
                action: Some("tenant.unlink".into()),
                limit: 100,
                ..AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(log.len(), 2, "{which:?}: one entry under each tenant");
    }
}

#[tokio::test]
async fn routing_rules_are_validated_versioned_and_audited() {
    use store::routing::RuleSpec;
    for which in backends() {
        let (_db, store) = store(which).await;
        let admin = store.admin();
        let msp = tenant(&store, "msp").await;
        let acme = tenant(&store, "acme").await;
        tenant(&store, "stranger").await;
        let rule = |id: &str, child: &str, filter: &str| RuleSpec {
            id: id.into(),
            child: child.into(),
            group: None,
            filter: Some(filter.into()),
        };
        let acme_rule = rule("acme-mail", "acme", r#"emails.value ew "@acme.example""#);

        let e = admin
            .set_routing_policy(msp.id(), vec![acme_rule.clone()], None, "op")
            .await
            .expect_err("standard");
        assert!(
            e.to_string().contains("not a super tenant"),
            "{which:?}: {e}"
        );
        admin
            .set_tenant_kind(msp.id(), TenantKind::Super, "op")
            .await
            .expect("super");
        let e = admin
            .set_routing_policy(msp.id(), vec![acme_rule.clone()], None, "op")
            .await
            .expect_err("not linked");
        assert!(
            e.to_string()
                .contains("'acme' is not a child of super tenant 'msp'"),
            "{which:?}: {e}"
        );
        admin
            .link_child(msp.id(), acme.id(), OnUnroute::Deactivate, "op")
            .await
            .expect("linked");
        let e = admin
            .set_routing_policy(
                msp.id(),
                vec![rule("bad", "acme", "userName eq")],
                None,
                "op",
            )
            .await
            .expect_err("bad filter");
        assert!(matches!(e, StoreError::InvalidValue(_)), "{which:?}: {e}");
        let e = admin
            .set_routing_policy(
                msp.id(),
                vec![rule("x", "stranger", "active eq true")],
                None,
                "op",
            )
            .await
            .expect_err("a stranger");
        assert!(e.to_string().contains("'stranger'"), "{which:?}: {e}");

        let empty = admin.routing_policy(msp.id()).await.expect("read");
        assert_eq!((empty.version, empty.rules.len()), (0, 0), "{which:?}");
        let set = admin
            .set_routing_policy(msp.id(), vec![acme_rule.clone()], Some(0), "op")
            .await
            .expect("set")
            .policy;
        assert_eq!(set.version, 1, "{which:?}");
        assert_eq!(admin.routing_policy(msp.id()).await.expect("read"), set);
        let e = admin
            .set_routing_policy(msp.id(), vec![], Some(0), "op")
            .await
            .expect_err("stale");
        assert!(
            matches!(e, StoreError::PreconditionFailed { current: 1 }),
            "{which:?}: {e}"
        );
        let cleared = admin
            .set_routing_policy(msp.id(), vec![], None, "op")
            .await
            .expect("cleared")
            .policy;
        assert_eq!((cleared.version, cleared.rules.len()), (2, 0), "{which:?}");

        let log = admin
            .audit_log(&AuditQuery {
                action: Some("routing.update".into()),
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .expect("audit");
        assert_eq!(log.len(), 2, "{which:?}: refused changes leave no entry");
    }
}
