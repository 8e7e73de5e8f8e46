//! /Schemas, /ResourceTypes, /ServiceProviderConfig documents. (To be written.)
