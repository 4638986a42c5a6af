//! Accounts: get, find by customer reference, create, modify, change status (terminating one
//! terminates its services, with their devices and features). Uses the shared paths in
//! `entity` and the codec in `xml`.

use diesel::prelude::*;

use super::db::{prov_accounts as a, prov_services as s};
use super::entity::{self, record_kind};
use super::xml::NS_ACC;
use super::{Conn, Outcome, Problem};
use crate::generated::partner::Response;
use crate::generated::types::{acc, cmn};
use crate::xs::DateTime;

record_kind!(acc::Account {
    table: a,
    key: account_number,
    what: "account",
    entity: Account,
    namespace: NS_ACC,
    root: "acc:Account",
    columns(account) {
        customer_reference: account.customer_reference.as_str(),
    },
});

/// The partner's account `number`, with its row id.
pub(crate) fn load(
    c: &mut Conn,
    partner: &str,
    number: &cmn::AccountNumber,
) -> Result<(acc::Account, i64), Problem> {
    entity::load(c, partner, number.as_str())
}

/// GetAccount.
pub(crate) fn get(c: &mut Conn, partner: &str, r: &acc::GetAccount) -> Outcome {
    let (account, _) = load(c, partner, &r.account_number)?;
    Ok(Response::GetAccount(Box::new(acc::GetAccountResponse {
        account,
    })))
}

/// FindAccounts: the partner's accounts with a customer reference, oldest first, at most 100.
pub(crate) fn find(c: &mut Conn, partner: &str, r: &acc::FindAccounts) -> Outcome {
    let rows: Vec<String> = a::table
        .filter(a::partner_id.eq(partner))
        .filter(a::customer_reference.eq(r.customer_reference.as_str()))
        .order(a::id.asc())
        .limit(100)
        .select(a::record)
        .load(c)?;
    let account = entity::decode_all(&rows)?;
    Ok(Response::FindAccounts(Box::new(
        acc::FindAccountsResponse { account },
    )))
}

/// CreateAccount: a fresh account number, the account ACTIVE at once.
pub(crate) fn create(c: &mut Conn, partner: &str, r: &acc::CreateAccount) -> Outcome {
    let fresh = ("ACC", "account number");
    let account = entity::create(c, partner, fresh, |number, at| {
        Ok(acc::Account {
            account_number: cmn::AccountNumber::new(number.to_string())
                .map_err(|e| Problem::Corrupt(e.to_string()))?,
            customer_reference: r.customer_reference.clone(),
            account_type: r.account_type.clone(),
            status: cmn::Status::Active,
            contact: r.contact.clone(),
            address: r.address.clone(),
            settings: r.settings.clone().unwrap_or(acc::AccountSettings {
                language: None,
                currency: None,
                billing_cycle: None,
                notes: None,
            }),
            created_at: DateTime::from_unix(at),
            updated_at: DateTime::from_unix(at),
        })
    })?;
    Ok(Response::CreateAccount(Box::new(
        acc::CreateAccountResponse { account },
    )))
}

/// ModifyAccount: the given parts replace the stored ones.
pub(crate) fn modify(c: &mut Conn, partner: &str, r: &acc::ModifyAccount) -> Outcome {
    let number = r.account_number.as_str();
    let account = entity::modify::<acc::Account>(c, partner, number, |_, account| {
        if let Some(contact) = &r.contact {
            account.contact = contact.clone();
        }
        if let Some(address) = &r.address {
            account.address = address.clone();
        }
        if let Some(settings) = &r.settings {
            account.settings = settings.clone();
        }
        Ok(())
    })?;
    Ok(Response::ModifyAccount(Box::new(
        acc::ModifyAccountResponse { account },
    )))
}

/// ChangeAccountStatus; terminating cascades to every service of the account, their devices
/// and features.
pub(crate) fn change_status(c: &mut Conn, partner: &str, r: &acc::ChangeAccountStatus) -> Outcome {
    let number = r.account_number.as_str();
    let previous =
        entity::change_status::<acc::Account>(c, partner, number, &r.status, |_, _| Ok(()))?;
    if r.status == cmn::Status::Terminated {
        let services: Vec<String> = s::table
            .filter(s::account_number.eq(number))
            .filter(s::status.ne("TERMINATED"))
            .select(s::service_id)
            .load(c)?;
        for service_id in services {
            entity::terminate_service(c, &service_id)?;
        }
    }
    Ok(Response::ChangeAccountStatus(Box::new(
        acc::ChangeAccountStatusResponse {
            account_number: r.account_number.clone(),
            previous_status: previous,
            status: r.status.clone(),
        },
    )))
}
