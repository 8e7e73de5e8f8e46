//! Filter printer: `Display` for the AST, producing a string `parse` reads back
//! to the same AST. (To be written.)
