//! meta and ETags. (To be written.)
