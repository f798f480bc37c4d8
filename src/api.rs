//! API definitions: the model, Tyk Classic and Tyk OAS parsing, loading
//! from a folder, and the live registry that requests are matched against.

mod classic;
mod definition;
mod model;
mod oas;
mod registry;
mod versioning;
mod yaml_depth;

pub use definition::{load_dir, parse_definition, DefinitionError, DefinitionFormat, ParsedApi};
pub use model::*;
pub use registry::{rest_of, route_key, ApiSource, LoadedApi, Registry, Snapshot};
pub use versioning::{
    Expiry, UrlPattern, Version, VersionLocation, VersionMode, Versioning, SELF_VERSION,
};
