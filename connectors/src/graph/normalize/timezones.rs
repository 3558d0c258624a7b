//! Event `start`/`end` (`dateTimeTimeZone`) zones: → IANA name, and → UTC.
//!
//! `timeZone` may be `UTC`, a Windows zone name (`Pacific Standard Time`; mapped to IANA with
//! the CLDR `windowsZones` "001" territory entries below), or an IANA name (when a client asked
//! for one with `Prefer: outlook.timezone`). One table serves both uses: [`resolve_zone`] gives
//! the chrono-tz zone, whose [`Tz::name`] is the IANA name (what DuckDB's `AT TIME ZONE` and other
//! engines accept, unlike Windows names). The local time is resolved with chrono-tz:
//! an ambiguous time (the repeated hour when DST ends) takes the earlier instant; a time in the
//! DST gap is read with the offset in force before the gap. An unknown zone gives `None`.
//!
//! The table is CLDR's (`common/supplemental/windowsZones.xml`, Windows list `7e11800`: every
//! `territory="001"` row, plus two older Windows names, `Mid-Atlantic Standard Time` and
//! `Kamchatka Standard Time`) and keeps CLDR's identifiers as they are, older spellings
//! included (`Asia/Calcutta`, `Europe/Kiev`, `America/Godthab`, `Asia/Katmandu`,
//! `Asia/Rangoon`, `America/Indianapolis`, `America/Buenos_Aires`): old and new tz databases
//! alike accept those (newer ones as links), while the newer names (`Europe/Kyiv`,
//! `America/Nuuk`) are unknown to engines with an older tz database or ICU. CLDR maps `UTC` to
//! `Etc/UTC`; we write `UTC` for every UTC spelling. Windows names are matched
//! case-insensitively, IANA names as chrono-tz spells them.

use chrono::{NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// CLDR windowsZones, territory 001 (the zone Windows means by each name).
pub const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("UTC-09", "Etc/GMT+9"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("UTC-08", "Etc/GMT+8"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    ("US Eastern Standard Time", "America/Indianapolis"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Buenos_Aires"),
    ("Greenland Standard Time", "America/Godthab"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2"),
    ("Mid-Atlantic Standard Time", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Calcutta"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Katmandu"),
    ("Central Asia Standard Time", "Asia/Bishkek"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Rangoon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("Kamchatka Standard Time", "Asia/Kamchatka"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
];

/// The zone a `timeZone` value names: UTC spellings, a Windows name, or an IANA name; `None`
/// when the name is unknown. Its [`Tz::name`] is the IANA name: `UTC` for UTC spellings,
/// CLDR's territory-001 zone for a Windows name, an IANA name as given (links keep their name).
pub fn resolve_zone(name: &str) -> Option<Tz> {
    let n = name.trim();
    if n.eq_ignore_ascii_case("UTC") || n.eq_ignore_ascii_case("tzone://Microsoft/Utc") || n == "Coordinated Universal Time" {
        return Some(Tz::UTC);
    }
    if let Some((_, iana)) = WINDOWS_ZONES.iter().find(|(w, _)| w.eq_ignore_ascii_case(n)) {
        return iana.parse().ok();
    }
    n.parse().ok()
}

/// UTC microseconds of a local wall time (micros since epoch read as if UTC) in `zone`.
pub fn local_to_utc_micros(local_micros: i64, zone: Tz) -> Option<i64> {
    if zone == Tz::UTC {
        return Some(local_micros);
    }
    let secs = local_micros.div_euclid(1_000_000);
    let sub = local_micros.rem_euclid(1_000_000);
    let naive = chrono::DateTime::from_timestamp(secs, 0)?.naive_utc();
    let offset = offset_secs(&naive, zone)?;
    Some((secs - i64::from(offset)) * 1_000_000 + sub)
}

fn offset_secs(naive: &NaiveDateTime, zone: Tz) -> Option<i32> {
    use chrono::LocalResult;
    match zone.offset_from_local_datetime(naive) {
        LocalResult::Single(o) => Some(o.fix().local_minus_utc()),
        LocalResult::Ambiguous(a, b) => Some(a.fix().local_minus_utc().max(b.fix().local_minus_utc())),
        LocalResult::None => {
            // In a DST gap: use the offset in force just before it.
            let before = *naive - chrono::Duration::hours(3);
            zone.offset_from_local_datetime(&before).earliest().map(|o| o.fix().local_minus_utc())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::normalize::timestamp::parse_timestamp_micros;

    fn local(s: &str) -> i64 {
        parse_timestamp_micros(s).unwrap()
    }

    #[test]
    fn every_windows_zone_resolves() {
        assert!(WINDOWS_ZONES.len() >= 60);
        for (w, iana) in WINDOWS_ZONES {
            assert!(resolve_zone(w).is_some(), "{w} -> {iana} does not resolve");
        }
        assert_eq!(resolve_zone("Europe/Paris"), Some(Tz::Europe__Paris));
        assert_eq!(resolve_zone("UTC"), Some(Tz::UTC));
        assert_eq!(resolve_zone("tzone://Microsoft/Utc"), Some(Tz::UTC));
        assert_eq!(resolve_zone("Mars Standard Time"), None);
    }

    fn iana_name(name: &str) -> Option<&'static str> {
        resolve_zone(name).map(Tz::name)
    }

    #[test]
    fn iana_names() {
        // Every Windows name maps to the IANA name the table gives (chrono-tz keeps links' names).
        for (w, iana) in WINDOWS_ZONES.iter().filter(|(w, _)| *w != "UTC") {
            assert_eq!(iana_name(w), Some(*iana), "{w}");
        }
        assert_eq!(iana_name("W. Europe Standard Time"), Some("Europe/Berlin"));
        assert_eq!(iana_name("India Standard Time"), Some("Asia/Calcutta"));
        assert_eq!(iana_name("FLE Standard Time"), Some("Europe/Kiev"));
        assert_eq!(iana_name("Pacific Standard Time"), Some("America/Los_Angeles"));
        assert_eq!(iana_name("pacific standard time"), Some("America/Los_Angeles"));
        assert_eq!(iana_name(" Tokyo Standard Time "), Some("Asia/Tokyo"));
        // UTC spellings.
        for utc in ["UTC", "utc", "tzone://Microsoft/Utc", "Coordinated Universal Time"] {
            assert_eq!(iana_name(utc), Some("UTC"), "{utc}");
        }
        // IANA names pass through, links and current names alike.
        for iana in ["Europe/Paris", "Asia/Kolkata", "Asia/Calcutta", "Europe/Kyiv", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "Etc/UTC"] {
            assert_eq!(iana_name(iana), Some(iana));
        }
        for unknown in ["Mars Standard Time", "", "tzone://Microsoft/Custom", "Europe/Atlantis", "+05:30"] {
            assert_eq!(iana_name(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn windows_zones_with_dst() {
        let pst = resolve_zone("Pacific Standard Time").unwrap();
        // Winter: UTC-8.
        assert_eq!(local_to_utc_micros(local("2024-01-22T09:00:00"), pst), Some(local("2024-01-22T17:00:00Z")));
        // Summer: UTC-7.
        assert_eq!(local_to_utc_micros(local("2024-07-01T09:00:00.0000000"), pst), Some(local("2024-07-01T16:00:00Z")));
        // The repeated hour on 2024-11-03 takes the earlier instant (PDT).
        assert_eq!(local_to_utc_micros(local("2024-11-03T01:30:00"), pst), Some(local("2024-11-03T08:30:00Z")));
        // The skipped hour on 2024-03-10 is read with the offset before the gap (PST).
        assert_eq!(local_to_utc_micros(local("2024-03-10T02:30:00"), pst), Some(local("2024-03-10T10:30:00Z")));
        let india = resolve_zone("India Standard Time").unwrap();
        assert_eq!(local_to_utc_micros(local("2024-01-22T10:00:00"), india), Some(local("2024-01-22T04:30:00Z")));
        let west_europe = resolve_zone("W. Europe Standard Time").unwrap();
        assert_eq!(local_to_utc_micros(local("2024-06-01T12:00:00"), west_europe), Some(local("2024-06-01T10:00:00Z")));
        let sydney = resolve_zone("AUS Eastern Standard Time").unwrap();
        assert_eq!(local_to_utc_micros(local("2024-01-10T12:00:00"), sydney), Some(local("2024-01-10T01:00:00Z")));
    }
}
