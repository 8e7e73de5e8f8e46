//! The schema registry (RFC 7643 §2, §7, §8.7): what every attribute is.
//!
//! This is the one place that knows an attribute's type, plurality,
//! case-exactness, mutability, `returned` and uniqueness. Filters, PATCH,
//! validation and projection all resolve paths here, and the `/Schemas` and
//! `/ResourceTypes` documents are generated from it.

use std::sync::LazyLock;

use crate::path::AttrPath;

/// Core User schema URN (RFC 7643 §4.1).
pub const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// Core Group schema URN (RFC 7643 §4.2).
pub const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// Enterprise User extension URN (RFC 7643 §4.3).
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// scimgate's User extension: the user's effective application roles (read-only).
pub const SCIMGATE_USER: &str = "urn:ietf:params:scim:schemas:extension:scimgate:2.0:User";

/// Whether `path` names scimgate's computed roles extension
/// ([`SCIMGATE_USER`]) or one of its attributes: lists filter and sort the
/// stored documents, which never hold it, so callers refuse such paths.
pub fn names_scimgate_user(path: &AttrPath) -> bool {
    path.urn.as_deref().is_some_and(|urn| {
        urn.eq_ignore_ascii_case(SCIMGATE_USER)
            || format!("{urn}:{}", path.name).eq_ignore_ascii_case(SCIMGATE_USER)
    })
}
/// ServiceProviderConfig schema URN (RFC 7643 §5).
pub const SERVICE_PROVIDER_CONFIG: &str =
    "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
/// ResourceType schema URN (RFC 7643 §6).
pub const RESOURCE_TYPE: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
/// Schema schema URN (RFC 7643 §7).
pub const SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
/// ListResponse message URN (RFC 7644 §3.4.2).
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// SearchRequest message URN (RFC 7644 §3.4.3).
pub const SEARCH_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// PatchOp message URN (RFC 7644 §3.5.2).
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Error message URN (RFC 7644 §3.12).
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// BulkRequest message URN (RFC 7644 §3.7).
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/// An attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttrType {
    /// A sequence of Unicode characters.
    String,
    /// `true` or `false`.
    Boolean,
    /// A real number.
    Decimal,
    /// A whole number.
    Integer,
    /// An xsd:dateTime, compared as an instant.
    DateTime,
    /// Base64-encoded bytes; compared exactly.
    Binary,
    /// A URI naming another resource.
    Reference,
    /// A set of sub-attributes.
    Complex,
}

impl AttrType {
    /// The RFC 7643 §7 spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::String => "string",
            AttrType::Boolean => "boolean",
            AttrType::Decimal => "decimal",
            AttrType::Integer => "integer",
            AttrType::DateTime => "dateTime",
            AttrType::Binary => "binary",
            AttrType::Reference => "reference",
            AttrType::Complex => "complex",
        }
    }
}

/// Whether and how an attribute may be written (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutability {
    /// Set by the service provider only; ignored on input.
    ReadOnly,
    /// Freely written.
    ReadWrite,
    /// Set once (on create, or when still unset), never changed after.
    Immutable,
    /// Accepted on input, never returned (e.g. `password`).
    WriteOnly,
}

impl Mutability {
    /// The RFC 7643 §7 spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        }
    }
}

/// When an attribute appears in responses (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returned {
    /// In every response, even when excluded.
    Always,
    /// Never returned.
    Never,
    /// Returned unless excluded, or unless `attributes` names others.
    Default,
    /// Only when named in `attributes`.
    Request,
}

impl Returned {
    /// The RFC 7643 §7 spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Returned::Always => "always",
            Returned::Never => "never",
            Returned::Default => "default",
            Returned::Request => "request",
        }
    }
}

/// How unique an attribute's value must be (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uniqueness {
    /// No uniqueness required.
    None,
    /// Unique within the service provider (for scimgate: within a tenant).
    Server,
    /// Globally unique.
    Global,
}

impl Uniqueness {
    /// The RFC 7643 §7 spelling used in `/Schemas`.
    pub fn as_str(self) -> &'static str {
        match self {
            Uniqueness::None => "none",
            Uniqueness::Server => "server",
            Uniqueness::Global => "global",
        }
    }
}

/// One attribute definition (RFC 7643 §7 "attributes").
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    /// The attribute's name, in its canonical case.
    pub name: String,
    /// Its data type.
    pub ty: AttrType,
    /// Whether it holds a list of values.
    pub multi_valued: bool,
    /// Human-readable description for `/Schemas`.
    pub description: String,
    /// Whether it must be present on create/replace.
    pub required: bool,
    /// Whether string comparison is case-sensitive.
    pub case_exact: bool,
    /// Who may write it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// How unique its value must be.
    pub uniqueness: Uniqueness,
    /// Suggested canonical values (e.g. "work", "home").
    pub canonical_values: Vec<String>,
    /// For references: the resource types or "external"/"uri" it may name.
    pub reference_types: Vec<String>,
    /// For complex attributes: their sub-attributes.
    pub sub_attributes: Vec<Attribute>,
}

impl Attribute {
    /// Looks up a sub-attribute by name, ignoring case (RFC 7643 §2.1).
    pub fn sub_attribute(&self, name: &str) -> Option<&Attribute> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// True for a multi-valued complex attribute (emails, members, ...).
    pub fn is_multi_complex(&self) -> bool {
        self.multi_valued && self.ty == AttrType::Complex
    }
}

/// One schema (RFC 7643 §7): an id URN and its attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The schema URN.
    pub id: String,
    /// Short name, e.g. "User".
    pub name: String,
    /// Human-readable description.
    pub description: String,
    /// Top-level attributes.
    pub attributes: Vec<Attribute>,
}

impl Schema {
    /// Looks up a top-level attribute by name, ignoring case.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// True when every attribute is readOnly: the service provider alone
    /// writes the schema's data (scimgate's effective-roles extension).
    pub fn is_read_only(&self) -> bool {
        self.attributes
            .iter()
            .all(|a| a.mutability == Mutability::ReadOnly)
    }
}

/// A resource type (RFC 7643 §6): endpoint, core schema and extensions.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// The resource type's id and name, e.g. "User".
    pub name: String,
    /// Its endpoint relative to the base URL, e.g. "/Users".
    pub endpoint: String,
    /// Human-readable description.
    pub description: String,
    /// The core schema URN.
    pub schema: String,
    /// Extension schemas: (URN, required).
    pub schema_extensions: Vec<(String, bool)>,
}

/// Every schema and resource type the server knows.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    /// The schemas, core and extension.
    pub schemas: Vec<Schema>,
    /// The resource types.
    pub resource_types: Vec<ResourceType>,
    /// Attributes common to every resource (RFC 7643 §3.1): id, externalId, meta.
    pub common: Vec<Attribute>,
}

static STANDARD: LazyLock<Registry> = LazyLock::new(Registry::build_standard);

impl Registry {
    /// The registry of RFC 7643 User, Group and Enterprise User, and
    /// scimgate's read-only User extension.
    pub fn standard() -> &'static Registry {
        &STANDARD
    }

    /// Looks up a schema by URN, ignoring case.
    pub fn schema(&self, urn: &str) -> Option<&Schema> {
        self.schemas.iter().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// Looks up a resource type by name ("User"), ignoring case.
    pub fn resource_type(&self, name: &str) -> Option<&ResourceType> {
        self.resource_types
            .iter()
            .find(|r| r.name.eq_ignore_ascii_case(name))
    }

    /// A view of one resource type for resolving paths.
    pub fn view<'a>(&'a self, resource_type: &str) -> Option<ResourceSchema<'a>> {
        self.resource_type(resource_type).map(|rt| ResourceSchema {
            registry: self,
            resource_type: rt,
        })
    }

    fn build_standard() -> Registry {
        Registry {
            schemas: vec![
                user_schema(),
                group_schema(),
                enterprise_user_schema(),
                scimgate_user_schema(),
            ],
            resource_types: vec![
                ResourceType {
                    name: "User".into(),
                    endpoint: "/Users".into(),
                    description: "User Account".into(),
                    schema: USER.into(),
                    schema_extensions: vec![
                        (ENTERPRISE_USER.into(), false),
                        (SCIMGATE_USER.into(), false),
                    ],
                },
                ResourceType {
                    name: "Group".into(),
                    endpoint: "/Groups".into(),
                    description: "Group".into(),
                    schema: GROUP.into(),
                    schema_extensions: vec![],
                },
            ],
            common: common_attributes(),
        }
    }
}

/// One resource type seen through the registry: the context every
/// schema-aware operation (filter evaluation, PATCH, validation, projection)
/// takes.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSchema<'a> {
    /// The registry the resource type lives in.
    pub registry: &'a Registry,
    /// The resource type.
    pub resource_type: &'a ResourceType,
}

/// An attribute path resolved to its definitions.
#[derive(Debug, Clone, Copy)]
pub struct AttrRef<'a> {
    /// The schema that defines the attribute; `None` for common attributes
    /// (id, externalId, meta), which belong to no schema.
    pub schema: Option<&'a Schema>,
    /// The top-level attribute.
    pub attribute: &'a Attribute,
    /// The sub-attribute, when the path named one.
    pub sub_attribute: Option<&'a Attribute>,
}

impl<'a> AttrRef<'a> {
    /// The innermost definition the path names.
    pub fn leaf(&self) -> &'a Attribute {
        self.sub_attribute.unwrap_or(self.attribute)
    }

    /// True when the attribute lives in an extension schema, i.e. is stored
    /// under that schema's URN key in the document.
    pub fn is_extension(&self, rs: &ResourceSchema<'_>) -> bool {
        self.schema
            .is_some_and(|s| !s.id.eq_ignore_ascii_case(&rs.resource_type.schema))
    }
}

impl<'a> ResourceSchema<'a> {
    /// The standard User resource type.
    pub fn user() -> ResourceSchema<'static> {
        Self::standard("User")
    }

    /// The standard Group resource type.
    pub fn group() -> ResourceSchema<'static> {
        Self::standard("Group")
    }

    fn standard(name: &str) -> ResourceSchema<'static> {
        let registry = Registry::standard();
        match registry.view(name) {
            Some(v) => v,
            // The standard registry is built in this file with both types.
            None => unreachable!("standard registry lacks resource type {name}"),
        }
    }

    /// The core schema of this resource type.
    pub fn core(&self) -> &'a Schema {
        match self.registry.schema(&self.resource_type.schema) {
            Some(s) => s,
            None => unreachable!("resource type names an unregistered core schema"),
        }
    }

    /// The extension schemas this resource type declares.
    pub fn extensions(&self) -> impl Iterator<Item = &'a Schema> + 'a {
        let registry = self.registry;
        self.resource_type
            .schema_extensions
            .iter()
            .filter_map(move |(urn, _)| registry.schema(urn))
    }

    /// The extensions an attribute name without a URN may resolve into:
    /// those a client can write. IdPs omit the URN of extensions they send,
    /// never of a read-only one the server fills in, so leaving those out
    /// keeps an IdP's custom top-level attribute (Okta sends them there)
    /// named `disabled` or `locked` what it was; a read-only extension's
    /// attributes are reached only by their qualified path.
    pub fn lenient_extensions(&self) -> impl Iterator<Item = &'a Schema> + 'a {
        self.extensions().filter(|s| !s.is_read_only())
    }

    /// The core or extension schema of this resource type with that URN.
    pub fn schema_for_urn(&self, urn: &str) -> Option<&'a Schema> {
        let core = self.core();
        if core.id.eq_ignore_ascii_case(urn) {
            return Some(core);
        }
        self.extensions().find(|s| s.id.eq_ignore_ascii_case(urn))
    }

    /// True when `urn` is the core schema or a declared extension.
    pub fn knows_schema(&self, urn: &str) -> bool {
        self.schema_for_urn(urn).is_some()
    }

    /// Resolves a top-level attribute by optional URN and name, without
    /// building an [`AttrPath`] (the filter evaluator's hot path) and
    /// regardless of any sub-attribute. Returns the defining schema (`None`
    /// for the common attributes) with the definition; see [`Self::resolve`]
    /// for the lookup order.
    pub fn resolve_attribute(
        &self,
        urn: Option<&str>,
        name: &str,
    ) -> Option<(Option<&'a Schema>, &'a Attribute)> {
        let common = || {
            self.registry
                .common
                .iter()
                .find(|a| a.name.eq_ignore_ascii_case(name))
                .map(|a| (None, a))
        };
        match urn {
            Some(urn) => {
                let schema = self.schema_for_urn(urn)?;
                match schema.attribute(name) {
                    Some(a) => Some((Some(schema), a)),
                    // `urn:...:core:2.0:User:id` qualifies a common attribute.
                    None if schema.id.eq_ignore_ascii_case(&self.resource_type.schema) => common(),
                    None => None,
                }
            }
            None => common().or_else(|| {
                let core = self.core();
                core.attribute(name).map(|a| (Some(core), a)).or_else(|| {
                    self.lenient_extensions()
                        .find_map(|s| s.attribute(name).map(|a| (Some(s), a)))
                })
            }),
        }
    }

    /// Resolves a path to its attribute definitions.
    ///
    /// A path without a URN resolves against the common attributes, then the
    /// core schema, then (leniently, as IdPs sometimes omit the URN) the
    /// writable extensions in declaration order (see
    /// [`Self::lenient_extensions`]). Returns `None` for attributes no
    /// known schema defines, e.g. an IdP's custom extension; callers treat
    /// those by their JSON type, case-insensitive, readWrite.
    pub fn resolve(&self, path: &AttrPath) -> Option<AttrRef<'a>> {
        let (schema, attribute) = self.resolve_attribute(path.urn.as_deref(), &path.name)?;
        let sub_attribute = match &path.sub {
            Some(sub) => Some(attribute.sub_attribute(sub)?),
            None => None,
        };
        Some(AttrRef {
            schema,
            attribute,
            sub_attribute,
        })
    }
}

// ---------------------------------------------------------------------------
// Definitions. A small builder keeps the RFC 7643 §8.7.1 tables readable:
// every attribute starts as a single-valued, optional, case-insensitive,
// readWrite, returned-by-default, non-unique string, and says how it differs.

fn attr(name: &str, ty: AttrType, description: &str) -> Attribute {
    Attribute {
        name: name.into(),
        ty,
        multi_valued: false,
        description: description.into(),
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        uniqueness: Uniqueness::None,
        canonical_values: vec![],
        reference_types: vec![],
        sub_attributes: vec![],
    }
}

fn string(name: &str, description: &str) -> Attribute {
    attr(name, AttrType::String, description)
}

fn boolean(name: &str, description: &str) -> Attribute {
    attr(name, AttrType::Boolean, description)
}

fn date_time(name: &str, description: &str) -> Attribute {
    attr(name, AttrType::DateTime, description)
}

fn reference(name: &str, types: &[&str], description: &str) -> Attribute {
    let mut a = attr(name, AttrType::Reference, description);
    a.reference_types = types.iter().map(|t| (*t).into()).collect();
    a
}

fn complex(name: &str, description: &str, subs: Vec<Attribute>) -> Attribute {
    let mut a = attr(name, AttrType::Complex, description);
    a.sub_attributes = subs;
    a
}

impl Attribute {
    fn multi(mut self) -> Self {
        self.multi_valued = true;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn exact(mut self) -> Self {
        self.case_exact = true;
        self
    }
    fn mutability(mut self, m: Mutability) -> Self {
        self.mutability = m;
        self
    }
    fn returned(mut self, r: Returned) -> Self {
        self.returned = r;
        self
    }
    fn unique(mut self, u: Uniqueness) -> Self {
        self.uniqueness = u;
        self
    }
    fn canonical(mut self, values: &[&str]) -> Self {
        self.canonical_values = values.iter().map(|v| (*v).into()).collect();
        self
    }
    fn read_only(self) -> Self {
        self.mutability(Mutability::ReadOnly)
    }
}

/// The standard sub-attributes of a plural attribute (RFC 7643 §2.4).
fn plural(name: &str, description: &str, value: Attribute, types: &[&str]) -> Attribute {
    complex(
        name,
        description,
        vec![
            value,
            string(
                "display",
                "A human-readable name, primarily used for display purposes.",
            ),
            string("type", "A label indicating the attribute's function.").canonical(types),
            boolean(
                "primary",
                "A Boolean value indicating the 'primary' or preferred attribute value.",
            ),
        ],
    )
    .multi()
}

fn common_attributes() -> Vec<Attribute> {
    vec![
        // URNs are case-insensitive in their namespace part, and IdPs differ
        // in the case they send, so `schemas eq "..."` compares loosely.
        reference(
            "schemas",
            &["uri"],
            "The schema URIs this resource conforms to.",
        )
        .multi()
        .required()
        .returned(Returned::Always),
        string(
            "id",
            "Unique identifier for the resource, assigned by the service provider.",
        )
        .exact()
        .read_only()
        .returned(Returned::Always)
        .unique(Uniqueness::Server),
        string(
            "externalId",
            "Identifier of the resource as defined by the provisioning client.",
        )
        .exact(),
        complex(
            "meta",
            "Resource metadata.",
            vec![
                string(
                    "resourceType",
                    "The name of the resource type of the resource.",
                )
                .exact()
                .read_only(),
                date_time(
                    "created",
                    "When the resource was added to the service provider.",
                )
                .read_only(),
                date_time("lastModified", "When the resource was last modified.").read_only(),
                reference(
                    "location",
                    &["uri"],
                    "The URI of the resource being returned.",
                )
                .exact()
                .read_only(),
                string(
                    "version",
                    "The version (ETag) of the resource being returned.",
                )
                .exact()
                .read_only(),
            ],
        )
        .read_only(),
    ]
}

fn user_schema() -> Schema {
    let name = complex(
        "name",
        "The components of the user's real name.",
        vec![
            string("formatted", "The full name, formatted for display."),
            string("familyName", "The family name of the User."),
            string("givenName", "The given name of the User."),
            string("middleName", "The middle name(s) of the User."),
            string("honorificPrefix", "The honorific prefix(es) of the User."),
            string("honorificSuffix", "The honorific suffix(es) of the User."),
        ],
    );
    let emails = plural(
        "emails",
        "Email addresses for the user.",
        string("value", "Email address for the user."),
        &["work", "home", "other"],
    );
    let phones = plural(
        "phoneNumbers",
        "Phone numbers for the User.",
        string("value", "Phone number of the User."),
        &["work", "home", "mobile", "fax", "pager", "other"],
    );
    let ims = plural(
        "ims",
        "Instant messaging addresses for the User.",
        string("value", "Instant messaging address for the User."),
        &["aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"],
    );
    let photos = plural(
        "photos",
        "URLs of photos of the User.",
        reference("value", &["external"], "URL of a photo of the User."),
        &["photo", "thumbnail"],
    );
    let addresses = complex(
        "addresses",
        "A physical mailing address for this User.",
        vec![
            string(
                "formatted",
                "The full mailing address, formatted for display.",
            ),
            string("streetAddress", "The full street address component."),
            string("locality", "The city or locality component."),
            string("region", "The state or region component."),
            string("postalCode", "The zip code or postal code component."),
            string("country", "The country name component."),
            string("type", "A label indicating the attribute's function.")
                .canonical(&["work", "home", "other"]),
            boolean("primary", "Whether this is the primary address."),
        ],
    )
    .multi();
    let groups = complex(
        "groups",
        "A list of groups to which the user belongs.",
        vec![
            string("value", "The identifier of the User's group.").read_only(),
            reference(
                "$ref",
                &["User", "Group"],
                "The URI of the corresponding Group resource.",
            )
            .read_only(),
            string(
                "display",
                "A human-readable name, primarily used for display purposes.",
            )
            .read_only(),
            string("type", "Whether membership is direct or indirect.")
                .canonical(&["direct", "indirect"])
                .read_only(),
        ],
    )
    .multi()
    .read_only();
    let entitlements = plural(
        "entitlements",
        "A list of entitlements for the User.",
        string("value", "The value of an entitlement."),
        &[],
    );
    let roles = plural(
        "roles",
        "A list of roles for the User.",
        string("value", "The value of a role."),
        &[],
    );
    let certs = plural(
        "x509Certificates",
        "A list of certificates issued to the User.",
        attr(
            "value",
            AttrType::Binary,
            "The value of an X.509 certificate.",
        ),
        &[],
    );
    Schema {
        id: USER.into(),
        name: "User".into(),
        description: "User Account".into(),
        attributes: vec![
            string(
                "userName",
                "Unique identifier for the User, used to authenticate.",
            )
            .required()
            .unique(Uniqueness::Server),
            name,
            string(
                "displayName",
                "The name of the User, suitable for display to end-users.",
            ),
            string("nickName", "The casual way to address the user."),
            reference(
                "profileUrl",
                &["external"],
                "A fully qualified URL to the User's online profile.",
            ),
            string("title", "The user's title, such as \"Vice President\"."),
            string(
                "userType",
                "The relationship between the organization and the user.",
            ),
            string(
                "preferredLanguage",
                "The User's preferred written or spoken language.",
            ),
            string("locale", "The User's default location for localization."),
            string(
                "timezone",
                "The User's time zone in the 'Olson' time zone database format.",
            ),
            boolean(
                "active",
                "A Boolean value indicating the User's administrative status.",
            ),
            string("password", "The User's cleartext password, write-only.")
                .mutability(Mutability::WriteOnly)
                .returned(Returned::Never),
            emails,
            phones,
            ims,
            photos,
            addresses,
            groups,
            entitlements,
            roles,
            certs,
        ],
    }
}

fn group_schema() -> Schema {
    Schema {
        id: GROUP.into(),
        name: "Group".into(),
        description: "Group".into(),
        attributes: vec![
            // RFC 7643 §4.2 calls displayName REQUIRED (the §8.7.1 table's
            // "required": false is a known erratum); Entra also needs it unique.
            string("displayName", "A human-readable name for the Group.")
                .required()
                .unique(Uniqueness::Server),
            complex(
                "members",
                "A list of members of the Group.",
                vec![
                    string("value", "Identifier of the member of this Group.")
                        .mutability(Mutability::Immutable),
                    reference(
                        "$ref",
                        &["User", "Group"],
                        "The URI of the member resource.",
                    )
                    .mutability(Mutability::Immutable),
                    string("display", "A human-readable name of the member."),
                    string("type", "The type of the member.")
                        .canonical(&["User", "Group"])
                        .mutability(Mutability::Immutable),
                ],
            )
            .multi(),
        ],
    }
}

fn enterprise_user_schema() -> Schema {
    Schema {
        id: ENTERPRISE_USER.into(),
        name: "EnterpriseUser".into(),
        description: "Enterprise User".into(),
        attributes: vec![
            string(
                "employeeNumber",
                "Numeric or alphanumeric identifier assigned to a person.",
            ),
            string("costCenter", "Identifies the name of a cost center."),
            string("organization", "Identifies the name of an organization."),
            string("division", "Identifies the name of a division."),
            string("department", "Identifies the name of a department."),
            complex(
                "manager",
                "The User's manager.",
                vec![
                    string(
                        "value",
                        "The id of the SCIM resource representing the User's manager.",
                    ),
                    reference(
                        "$ref",
                        &["User"],
                        "The URI of the SCIM resource representing the manager.",
                    ),
                    string("displayName", "The displayName of the User's manager.").read_only(),
                ],
            ),
        ],
    }
}

/// scimgate's User extension (`SCIMGATE_USER`): the roles the tenant's role
/// policy gives the user, as stored by the last write that changed them.
/// Every attribute is readOnly: the gateway renders the object from the
/// effective-roles table and never stores a client's copy. SCIM forbids
/// complex sub-attributes (RFC 7643 §2.3.8), so the granting group is two
/// flat strings, present only for reason `mapping`.
fn scimgate_user_schema() -> Schema {
    let effective_roles = complex(
        "effectiveRoles",
        "The application roles the User has under the tenant's role policy, and why.",
        vec![
            string("value", "The role's name.").exact().read_only(),
            string(
                "reason",
                "Why the User has the role: a group mapping, the policy's default role, \
                 or an administrator's role-lock.",
            )
            .canonical(&["mapping", "default", "locked"])
            .exact()
            .read_only(),
            string(
                "groupId",
                "For reason 'mapping': the id of the Group whose mapping grants the role.",
            )
            .exact()
            .read_only(),
            string(
                "groupDisplay",
                "For reason 'mapping': the displayName of that Group.",
            )
            .read_only(),
        ],
    )
    .multi()
    .read_only();
    Schema {
        id: SCIMGATE_USER.into(),
        name: "ScimgateUser".into(),
        description: "Effective application roles scimgate derives for the User (read-only)".into(),
        attributes: vec![
            effective_roles,
            boolean(
                "disabled",
                "True when the User is inactive ('active' is false); the roles are kept \
                 so that reactivation restores them.",
            )
            .read_only(),
            boolean(
                "locked",
                "True when an administrator's role-lock sets the User's roles.",
            )
            .read_only(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_core_common_and_extension_paths_case_insensitively() {
        let u = ResourceSchema::user();
        let r = u.resolve(&AttrPath::parse("USERNAME").unwrap()).unwrap();
        assert_eq!(r.attribute.name, "userName");
        assert!(!r.leaf().case_exact);

        let r = u.resolve(&AttrPath::parse("id").unwrap()).unwrap();
        assert!(r.schema.is_none() && r.leaf().case_exact);

        let r = u
            .resolve(&AttrPath::parse("meta.lastModified").unwrap())
            .unwrap();
        assert_eq!(r.leaf().ty, AttrType::DateTime);

        let p = AttrPath::parse(&format!("{ENTERPRISE_USER}:manager.value")).unwrap();
        let r = u.resolve(&p).unwrap();
        assert!(r.is_extension(&u));
        assert_eq!(r.leaf().name, "value");

        // Lenient: an unqualified extension attribute still resolves.
        let r = u.resolve(&AttrPath::new("employeeNumber")).unwrap();
        assert!(r.is_extension(&u));

        assert!(u.resolve(&AttrPath::new("nonsense")).is_none());
        assert!(u.resolve(&AttrPath::with_sub("name", "nonsense")).is_none());
    }

    #[test]
    fn the_scimgate_extension_is_read_only_and_reached_only_by_its_urn() {
        let u = ResourceSchema::user();
        let ext = u.schema_for_urn(SCIMGATE_USER).unwrap();
        assert!(ext.is_read_only());
        assert!(!u.schema_for_urn(ENTERPRISE_USER).unwrap().is_read_only());
        let p = AttrPath::parse(&format!("{SCIMGATE_USER}:effectiveRoles.groupId")).unwrap();
        let r = u.resolve(&p).unwrap();
        assert!(r.is_extension(&u));
        assert!(r.attribute.is_multi_complex());
        assert_eq!(r.attribute.mutability, Mutability::ReadOnly);
        assert_eq!(r.leaf().mutability, Mutability::ReadOnly);
        // Unqualified names do not reach it: a custom top-level `locked`
        // stays a custom attribute.
        for name in ["effectiveRoles", "disabled", "locked"] {
            assert!(u.resolve(&AttrPath::new(name)).is_none(), "{name}");
        }
        assert!(
            u.lenient_extensions()
                .all(|s| s.id.eq_ignore_ascii_case(ENTERPRISE_USER))
        );
    }

    #[test]
    fn group_members_are_multi_complex_and_password_is_never_returned() {
        let g = ResourceSchema::group();
        let m = g.resolve(&AttrPath::new("members")).unwrap();
        assert!(m.attribute.is_multi_complex());
        let u = ResourceSchema::user();
        let pw = u.resolve(&AttrPath::new("password")).unwrap();
        assert_eq!(pw.attribute.returned, Returned::Never);
        assert_eq!(pw.attribute.mutability, Mutability::WriteOnly);
    }
}
