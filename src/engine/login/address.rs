//! Where a login comes from, for trusted networks and remembered logins:
//! the user's own address when the client names the attribute that carries
//! it (behind a VPN concentrator or NPS the source is always the NAS), and
//! the groups the upstream's Access-Accept names.

use std::net::IpAddr;

use crate::config::{GroupsFrom, UserAddressFrom};
use crate::radius::dict::Dictionary;
use crate::radius::{Packet, attr};

const FRAMED_IP_ADDRESS: u8 = 8;
const TUNNEL_CLIENT_ENDPOINT: u8 = 66;

/// The user's address in `p`, from the attribute `from` names. `None` when
/// the request lacks it or it is not an address.
pub(in crate::engine) fn user_address(p: &Packet<'_>, from: UserAddressFrom) -> Option<IpAddr> {
    let text = |v: &[u8]| {
        let s = std::str::from_utf8(v).ok()?.trim();
        s.parse::<IpAddr>()
            .ok()
            .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    };
    let ip = match from {
        UserAddressFrom::CallingStationId => text(p.find(attr::CALLING_STATION_ID)?.value)?,
        UserAddressFrom::TunnelClientEndpoint => {
            let v = p.find(TUNNEL_CLIENT_ENDPOINT)?.value;
            // RFC 2868 §3.3: a first octet below 0x20 is a tag.
            let v = match v.first() {
                Some(&t) if t < 0x20 => &v[1..],
                _ => v,
            };
            text(v)?
        }
        UserAddressFrom::FramedIpAddress => {
            let v: [u8; 4] = p.find(FRAMED_IP_ADDRESS)?.value.try_into().ok()?;
            IpAddr::from(v)
        }
    };
    Some(ip.to_canonical())
}

/// Which attribute of an upstream Access-Accept names groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSource {
    /// 0 for a standard attribute.
    vendor: u32,
    number: u8,
    prefix: String,
}

impl GroupSource {
    /// Resolves `[groups] from_attribute` in the dictionary.
    pub fn resolve(from: &GroupsFrom, dictionary: &Dictionary) -> Result<GroupSource, String> {
        let def = dictionary.attr_by_name(&from.attribute).ok_or_else(|| {
            format!(
                "`groups.from_attribute`: the dictionary has no attribute named \"{}\"",
                from.attribute
            )
        })?;
        let number = u8::try_from(def.number).map_err(|_| {
            format!(
                "`groups.from_attribute`: \"{}\" is not an attribute of one octet's number",
                from.attribute
            )
        })?;
        Ok(GroupSource {
            vendor: def.vendor,
            number,
            prefix: from.prefix.clone(),
        })
    }

    /// The groups `reply` names: every value of the attribute that is text
    /// and starts with the prefix, without it.
    pub(in crate::engine) fn groups(&self, reply: &Packet<'_>) -> Vec<String> {
        let values = reply.attributes().filter_map(|a| {
            if self.vendor == 0 {
                return (a.typ == self.number).then_some(a.value);
            }
            // RFC 2865 §5.26: vendor, then type, length, value.
            let v = a.value;
            (a.typ == attr::VENDOR_SPECIFIC
                && v.len() >= 6
                && v[..4] == self.vendor.to_be_bytes()
                && v[4] == self.number
                && usize::from(v[5]) == v.len() - 4)
                .then(|| &v[6..])
        });
        values
            .filter_map(|v| std::str::from_utf8(v).ok())
            .filter_map(|s| s.strip_prefix(self.prefix.as_str()))
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::radius::{AUTH_LEN, Code, PacketBuilder};

    fn packet(attrs: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = PacketBuilder::new(Code::ACCESS_REQUEST, 1, &[0; AUTH_LEN]);
        for (t, v) in attrs {
            b.push(*t, v).expect("fits");
        }
        b.finish_request(&b"secret"[..])
    }

    #[test]
    fn user_addresses() {
        let p = packet(&[
            (attr::CALLING_STATION_ID, b"2001:db8:1::7"),
            (TUNNEL_CLIENT_ENDPOINT, b"\x01198.51.100.4"),
            (FRAMED_IP_ADDRESS, &[10, 1, 2, 3]),
        ]);
        let p = Packet::parse(&p).expect("valid");
        let at = |f| user_address(&p, f).map(|a| a.to_string());
        assert_eq!(
            at(UserAddressFrom::CallingStationId).as_deref(),
            Some("2001:db8:1::7")
        );
        assert_eq!(
            at(UserAddressFrom::TunnelClientEndpoint).as_deref(),
            Some("198.51.100.4")
        );
        assert_eq!(
            at(UserAddressFrom::FramedIpAddress).as_deref(),
            Some("10.1.2.3")
        );
        let mac = packet(&[(attr::CALLING_STATION_ID, b"00-11-22-33-44-55")]);
        let mac = Packet::parse(&mac).expect("valid");
        assert_eq!(
            user_address(&mac, UserAddressFrom::CallingStationId),
            None,
            "a MAC is no address"
        );
        assert_eq!(user_address(&mac, UserAddressFrom::FramedIpAddress), None);
    }

    #[test]
    fn groups_from_class_and_a_vendor_attribute() {
        let d = Dictionary::builtin();
        let class = GroupSource::resolve(
            &GroupsFrom {
                attribute: "Class".into(),
                prefix: "grp:".into(),
            },
            &d,
        )
        .expect("Class is known");
        let p = packet(&[
            (25, b"grp:vpn-users"),
            (25, b"other"),
            (25, b"grp:contractors"),
        ]);
        let p = Packet::parse(&p).expect("valid");
        assert_eq!(class.groups(&p), ["vpn-users", "contractors"]);
        let unknown = GroupSource::resolve(
            &GroupsFrom {
                attribute: "No-Such-Attribute".into(),
                prefix: String::new(),
            },
            &d,
        );
        assert!(unknown.expect_err("unknown").contains("No-Such-Attribute"));
        // A vendor attribute, by its dictionary name.
        let d = Dictionary::parse_str(
            "VENDOR Example 99999\nBEGIN-VENDOR Example\nATTRIBUTE Example-Group 7 string\nEND-VENDOR Example\n",
        )
        .expect("dictionary");
        let vendor = GroupSource::resolve(
            &GroupsFrom {
                attribute: "Example-Group".into(),
                prefix: String::new(),
            },
            &d,
        )
        .expect("known");
        let mut vsa = 99999u32.to_be_bytes().to_vec();
        vsa.extend_from_slice(&[7, 2 + 5]);
        vsa.extend_from_slice(b"admin");
        let p = packet(&[(attr::VENDOR_SPECIFIC, &vsa), (25, b"admin-not")]);
        let p = Packet::parse(&p).expect("valid");
        assert_eq!(vendor.groups(&p), ["admin"]);
    }
}
