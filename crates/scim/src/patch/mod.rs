//! PATCH (RFC 7644 §3.5.2), including the dialects Microsoft Entra ID and
//! Okta actually send.
//!
//! [`PatchRequest::from_json`] validates the message; [`apply`] runs it
//! against a resource document atomically and reports which top-level
//! attributes changed; [`split_member_changes`] takes Group membership
//! operations out as a delta for the store.
//!
//! Decisions where the RFC is silent or the IdPs deviate from it:
//!
//! - **Message shape.** `schemas` must list the PatchOp URN and
//!   `Operations` must be a non-empty array, else `invalidSyntax`; keys and
//!   `op` values match ignoring case (Entra sends `"Replace"`). A missing
//!   `value` on add/replace is `invalidValue`; a malformed path, including a
//!   malformed value filter inside it, is `invalidPath`.
//! - **remove without path** fails with `noTarget` (RFC 7644 §3.5.2.2).
//! - **Path-less values** are objects whose keys may themselves be paths:
//!   Entra sends `{"name.givenName": "x", "emails[type eq \"work\"].value":
//!   "y", "urn:...:enterprise:2.0:User:employeeNumber": "z"}`. Each key is
//!   applied in order as if it were the operation's path. In such objects
//!   `schemas` is ignored (the engine maintains it), and read-only
//!   attributes (`id`, `meta`, `groups`) are ignored when they equal the
//!   current value (Okta echoes the group `id` on rename) and otherwise fail
//!   with `mutability`. A read-only attribute named by an explicit `path`
//!   always fails with `mutability`; read-only sub-attributes inside a
//!   value (`manager.displayName`) are ignored as RFC 7643 §7 prescribes.
//! - **Clearing.** `null` or `""` as the value of add/replace clears the
//!   attribute (Entra sends `""` when the source was emptied). Removing or
//!   clearing a required attribute (`userName`, a group's `displayName`)
//!   fails with `mutability` (RFC 7644 §3.5.2). Values, complex values and
//!   extension objects left empty are removed, and an extension object's
//!   URN is added to / removed from `schemas` with it.
//! - **Filtered paths with no match.** `add` creates the value the filter
//!   describes when the filter is `eq` terms joined by `and`
//!   (`phoneNumbers[type eq "mobile"].value` → `{"type":"mobile","value":..}`).
//!   `replace` does the same: RFC 7644 §3.5.2.3 calls a filtered replace
//!   without a match `noTarget`, but Entra sends `Replace emails[type eq
//!   "work"].value` as "set the work email" whether or not one exists, and
//!   the RFC also says a replace of a missing target is an add. A filter
//!   that cannot describe a value (`co`, `or`, ...) gives `noTarget`.
//!   `remove` with a filter that matches nothing succeeds.
//! - **Bare values for complex attributes** (Entra's `"manager": "<id>"`, or
//!   `[{"value": ...}]`) replace the whole complex value; an object merges
//!   into it, leaving unnamed sub-attributes unchanged (RFC 7644 §3.5.2.3).
//! - **Whole extension objects** (a `path` that is the extension's URN, or
//!   the URN as a key of a path-less value) behave like a complex
//!   attribute: add/replace apply each attribute in the object, remove
//!   drops the object; an extension nested in an extension is
//!   `invalidValue`. A read-only extension (every attribute readOnly:
//!   scimgate's `urn:...:scimgate:2.0:User`, which the server fills in)
//!   cannot be added, replaced or removed at all: `mutability`, by path or
//!   as a value key. Its attributes follow the read-only rules above (a
//!   value key equal to the current value, which is never stored, is only
//!   an unassigned one). A URN the registry does not know names a whole
//!   extension when its second-to-last segment is a version
//!   (`...:CustomExtensionName:2.0:User`), else an attribute of one.
//! - **remove with a value** on a multi-valued attribute removes only the
//!   listed values (Microsoft's `{"op":"Remove","path":"members","value":
//!   [{"value":"id"}]}`), matched by their `value` sub-attribute.
//! - **primary**: setting a value primary sets `primary: false` on any
//!   other value that claimed it; a list naming two primaries is
//!   `invalidValue`.
//! - **Unregistered extensions** (`urn:...:CustomExtensionName:2.0:User:attr`)
//!   are stored as sent under their schema URN. Unknown attributes of known
//!   schemas, and unqualified unknown attributes, are `invalidPath`.

mod doc;
mod engine;
mod members;
mod request;
mod target;
#[cfg(test)]
mod tests;

pub use engine::{PatchOutcome, apply, apply_owned};
pub use members::{Member, MemberChange, split_member_changes};
pub use request::{OpKind, PatchOperation, PatchRequest};
