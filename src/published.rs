//! The published contract, embedded in the binary: the WSDLs and XSDs partners generate their
//! clients from, and the SOAP 1.1-only views build.rs derives. The server (and `partnergate wsdl`)
//! hands these out; addresses are rewritten to the deployment's public URL when served.

/// One published document.
#[derive(Clone, Copy, Debug)]
pub struct Document {
    /// The name it is published under (`?xsd=NAME`, or the WSDL's file name).
    pub name: &'static str,
    /// Its text.
    pub text: &'static str,
}

/// The partner API WSDL (SOAP 1.1 and SOAP 1.2 bindings).
pub const PARTNER_WSDL: Document = Document {
    name: "partner-api.wsdl",
    text: include_str!("../wsdl/partner-api.wsdl"),
};

/// The partner API WSDL without its SOAP 1.2 binding and port, for toolkits that reject SOAP 1.2.
pub const PARTNER_WSDL_SOAP11: Document = Document {
    name: "partner-api-soap11.wsdl",
    text: include_str!(concat!(env!("OUT_DIR"), "/partner-api-soap11.wsdl")),
};

/// The callback WSDL: what the TSP calls on a partner's BSS.
pub const CALLBACK_WSDL: Document = Document {
    name: "partner-callback.wsdl",
    text: include_str!("../wsdl/partner-callback.wsdl"),
};

/// The callback WSDL without its SOAP 1.2 binding and port, for partners whose toolkits reject
/// SOAP 1.2 (they generate their callback server from it).
pub const CALLBACK_WSDL_SOAP11: Document = Document {
    name: "partner-callback-soap11.wsdl",
    text: include_str!(concat!(env!("OUT_DIR"), "/partner-callback-soap11.wsdl")),
};

/// The enrollment WSDL: how a prospective partner asks to become one and collects its keys.
pub const ENROLLMENT_WSDL: Document = Document {
    name: "partner-enrollment.wsdl",
    text: include_str!("../wsdl/partner-enrollment.wsdl"),
};

/// The enrollment WSDL without its SOAP 1.2 binding and port.
pub const ENROLLMENT_WSDL_SOAP11: Document = Document {
    name: "partner-enrollment-soap11.wsdl",
    text: include_str!(concat!(env!("OUT_DIR"), "/partner-enrollment-soap11.wsdl")),
};

/// The schemas the WSDLs import, by their `schemaLocation`.
pub const SCHEMAS: [Document; 7] = [
    Document {
        name: "common.xsd",
        text: include_str!("../wsdl/common.xsd"),
    },
    Document {
        name: "accounts.xsd",
        text: include_str!("../wsdl/accounts.xsd"),
    },
    Document {
        name: "services.xsd",
        text: include_str!("../wsdl/services.xsd"),
    },
    Document {
        name: "devices.xsd",
        text: include_str!("../wsdl/devices.xsd"),
    },
    Document {
        name: "features.xsd",
        text: include_str!("../wsdl/features.xsd"),
    },
    Document {
        name: "callback.xsd",
        text: include_str!("../wsdl/callback.xsd"),
    },
    Document {
        name: "enrollment.xsd",
        text: include_str!("../wsdl/enrollment.xsd"),
    },
];

/// The schema published under `name`, if any.
pub fn schema(name: &str) -> Option<&'static Document> {
    SCHEMAS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_location_in_the_wsdls_is_published() {
        for wsdl in [
            PARTNER_WSDL,
            PARTNER_WSDL_SOAP11,
            CALLBACK_WSDL,
            CALLBACK_WSDL_SOAP11,
            ENROLLMENT_WSDL,
            ENROLLMENT_WSDL_SOAP11,
        ] {
            for (i, _) in wsdl.text.match_indices("schemaLocation=\"") {
                let rest = &wsdl.text[i + "schemaLocation=\"".len()..];
                let end = rest.find('"').unwrap_or(0);
                let name = &rest[..end];
                assert!(
                    schema(name).is_some(),
                    "{}: {name} is not published",
                    wsdl.name
                );
            }
        }
        for xsd in SCHEMAS {
            for (i, _) in xsd.text.match_indices("schemaLocation=\"") {
                let rest = &xsd.text[i + "schemaLocation=\"".len()..];
                let end = rest.find('"').unwrap_or(0);
                assert!(
                    schema(&rest[..end]).is_some(),
                    "{}: {} is not published",
                    xsd.name,
                    &rest[..end]
                );
            }
        }
    }

    #[test]
    fn the_soap11_view_has_no_soap12_binding() {
        assert!(PARTNER_WSDL.text.contains("wsdl/soap12/"));
        assert!(!PARTNER_WSDL_SOAP11.text.contains("soap12"));
        assert!(PARTNER_WSDL_SOAP11.text.contains("PartnerApiSoap11Port"));
        assert!(!PARTNER_WSDL_SOAP11.text.contains("PartnerApiSoap12"));
    }
}
