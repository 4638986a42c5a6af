//! `nodes`: the gateway nodes sharing the database.

use partnergate::admin::Request;

use super::admin::administer;
use super::args::{Common, Output};

/// `partnergate nodes`.
pub fn run(common: &Common, output: &Output, out: &mut String) -> Result<(), String> {
    administer(Request::ListNodes, common, output, false, out)
}
