//! Projection: attributes / excludedAttributes. (To be written.)
