//! Validation of incoming resources. (To be written.)
