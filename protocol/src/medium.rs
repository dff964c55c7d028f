//! The line format of the simulated BLE medium's advert file, shared by `phone-sim` (which
//! appends) and `bridge` (which follows the file like `tail -f`): `UUID16:HEX`, optionally a
//! space and an RSSI in dBm, e.g. `fff9:336ad74cdadb806b05e968b87088c97928ec61cf -58`. A bare
//! `HEX` line (as other tools write captured service data) is taken as FIDO service data
//! (UUID `fff9`). Only the format lives here; reading and writing files is the IO crates' job.

use core::fmt;
use core::str::FromStr;

use crate::error::{Error, Malformed};

/// Longest service data accepted on one line (a legacy advert holds at most 29 bytes of it;
/// extended adverts more).
pub const MAX_SERVICE_DATA: usize = 255;

/// One advertisement heard on (or sent to) the simulated medium.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdvertLine {
    /// The 16-bit service UUID the data was sent under.
    pub uuid16: u16,
    /// The service data.
    pub data: Vec<u8>,
    /// Received signal strength in dBm, if the sender gave one.
    pub rssi: Option<i16>,
}

impl fmt::Display for AdvertLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{}", self.uuid16, hex::encode(&self.data))?;
        if let Some(r) = self.rssi {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// The service UUID of a bare `HEX` line: the FIDO service's.
const BARE_UUID: &str = "fff9"; // crate::eid::SERVICE_UUID_FIDO

impl FromStr for AdvertLine {
    type Err = Error;

    fn from_str(line: &str) -> Result<Self, Error> {
        let bad = |m: String| Error::from(Malformed::AdvertLine(m));
        let mut parts = line.split_whitespace();
        let main = parts.next().ok_or_else(|| bad("empty line".into()))?;
        let rssi = parts
            .next()
            .map(|r| {
                r.parse::<i16>()
                    .map_err(|_| bad(format!("RSSI {r:?} is not an integer in dBm")))
            })
            .transpose()?;
        if let Some(extra) = parts.next() {
            return Err(bad(format!("unexpected {extra:?} after the RSSI")));
        }
        let (uuid, data) = main.split_once(':').unwrap_or((BARE_UUID, main));
        if uuid.len() != 4 {
            return Err(bad(format!("service UUID {uuid:?} must be 4 hex digits")));
        }
        let uuid16 = u16::from_str_radix(uuid, 16)
            .map_err(|_| bad(format!("service UUID {uuid:?} is not hex")))?;
        if data.len() > 2 * MAX_SERVICE_DATA {
            return Err(bad(format!(
                "service data longer than {MAX_SERVICE_DATA} bytes"
            )));
        }
        let data =
            hex::decode(data).map_err(|_| bad(format!("service data {data:?} is not hex")))?;
        Ok(Self { uuid16, data, rssi })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let l: AdvertLine = "fff9:336ad74cdadb806b05e968b87088c97928ec61cf -58"
            .parse()
            .unwrap();
        assert_eq!(l.uuid16, 0xfff9);
        assert_eq!(l.data.len(), 20);
        assert_eq!(l.rssi, Some(-58));
        assert_eq!(
            l.to_string(),
            "fff9:336ad74cdadb806b05e968b87088c97928ec61cf -58"
        );
        let n: AdvertLine = "FDE2:00".parse().unwrap();
        assert_eq!(n.rssi, None);
        // Bare hex, with or without an RSSI, is FIDO service data.
        let b: AdvertLine = "336ad74cdadb806b05e968b87088c97928ec61cf".parse().unwrap();
        assert_eq!((b.uuid16, b.data.len(), b.rssi), (0xfff9, 20, None));
        let b: AdvertLine = "336AD74C -71".parse().unwrap();
        assert_eq!(
            (b.uuid16, b.data, b.rssi),
            (0xfff9, vec![0x33, 0x6a, 0xd7, 0x4c], Some(-71))
        );
        for bad in [
            "",
            "fff",
            "zz -50",
            "fff9:zz",
            "ff:00",
            "fff9:00 x",
            "fff9:00 -1 2",
            "xyz9:00",
        ] {
            assert!(bad.parse::<AdvertLine>().is_err(), "{bad}");
        }
    }
}
