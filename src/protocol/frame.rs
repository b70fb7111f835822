//! Frame headers (RFC 6455 §5.2): decode, encode and the §5 rules.
//!
//! [`FrameHeader::decode`] is stateless: given fewer bytes than the header needs it returns
//! `Ok(None)` and consumes nothing, so a caller resumes from any split by calling it again with
//! more bytes (at most [`MAX_HEADER_LEN`] are ever needed).

use crate::error::ProtocolError;
use crate::protocol::Role;

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask key.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A data frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Data {
    /// 0x0: continues a fragmented message.
    Continue,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x3–0x7: reserved for future data frames.
    Reserved(u8),
}

/// A control frame opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Control {
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
    /// 0xB–0xF: reserved for future control frames.
    Reserved(u8),
}

/// A frame opcode: data or control, with reserved values kept so that they can be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0–0x7.
    Data(Data),
    /// 0x8–0xF.
    Control(Control),
}

impl OpCode {
    /// Text message start.
    pub const TEXT: OpCode = OpCode::Data(Data::Text);
    /// Binary message start.
    pub const BINARY: OpCode = OpCode::Data(Data::Binary);
    /// Continuation.
    pub const CONTINUE: OpCode = OpCode::Data(Data::Continue);
    /// Close.
    pub const CLOSE: OpCode = OpCode::Control(Control::Close);
    /// Ping.
    pub const PING: OpCode = OpCode::Control(Control::Ping);
    /// Pong.
    pub const PONG: OpCode = OpCode::Control(Control::Pong);

    /// The opcode of the low four bits of `byte`.
    pub const fn from_u8(byte: u8) -> OpCode {
        match byte & 0x0f {
            0x0 => OpCode::Data(Data::Continue),
            0x1 => OpCode::Data(Data::Text),
            0x2 => OpCode::Data(Data::Binary),
            b @ 0x3..=0x7 => OpCode::Data(Data::Reserved(b)),
            0x8 => OpCode::Control(Control::Close),
            0x9 => OpCode::Control(Control::Ping),
            0xA => OpCode::Control(Control::Pong),
            b => OpCode::Control(Control::Reserved(b)),
        }
    }

    /// The four-bit wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Data(Data::Continue) => 0x0,
            OpCode::Data(Data::Text) => 0x1,
            OpCode::Data(Data::Binary) => 0x2,
            OpCode::Data(Data::Reserved(b)) | OpCode::Control(Control::Reserved(b)) => b & 0x0f,
            OpCode::Control(Control::Close) => 0x8,
            OpCode::Control(Control::Ping) => 0x9,
            OpCode::Control(Control::Pong) => 0xA,
        }
    }

    /// Whether this is a control opcode (0x8–0xF).
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Control(_))
    }

    /// Whether this opcode is reserved.
    pub const fn is_reserved(self) -> bool {
        matches!(
            self,
            OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_))
        )
    }
}

/// RSV1: owned by permessage-deflate when negotiated.
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// A decoded or to-be-encoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: last frame of the message.
    pub fin: bool,
    /// RSV1..RSV3 as the three low bits ([`RSV1`], [`RSV2`], [`RSV3`]).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The payload length.
    pub payload_len: u64,
}

/// What a receiver accepts, checked by [`FrameHeader::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRules {
    /// The receiving side: a server requires masked frames, a client unmasked ones.
    pub role: Role,
    /// RSV bits an extension owns (e.g. [`RSV1`] with permessage-deflate).
    pub allowed_rsv: u8,
    /// Largest payload accepted for one frame.
    pub max_frame_size: u64,
    /// Accept unmasked frames on a server (breaks RFC 6455 §5.1; for trusted peers only).
    pub dangerous_accept_unmasked_frames: bool,
}

impl FrameHeader {
    /// Decodes a header from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of the header, else the header and its
    /// length in bytes. Only what makes the header itself unreadable is rejected here (a 64-bit
    /// length with the top bit set); the rules that depend on the receiver are in
    /// [`FrameHeader::check`].
    ///
    /// # Errors
    ///
    /// [`ProtocolError::LengthOverflow`].
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7f {
            126 => match buf.get(2..4) {
                Some(&[hi, lo]) => (u64::from(u16::from_be_bytes([hi, lo])), 4),
                _ => return Ok(None),
            },
            127 => match buf.get(2..10) {
                Some(bytes) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(bytes);
                    let len = u64::from_be_bytes(be);
                    if len >> 63 != 0 {
                        return Err(ProtocolError::LengthOverflow);
                    }
                    (len, 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        let mask = if masked {
            match buf.get(pos..pos + 4) {
                Some(&[a, b, c, d]) => {
                    pos += 4;
                    Some([a, b, c, d])
                }
                _ => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0b111,
            opcode: OpCode::from_u8(b0),
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// Checks the RFC 6455 §5 rules that depend on the receiver: reserved opcodes, RSV bits,
    /// control frame size and fragmentation, masking direction, frame size limit.
    ///
    /// # Errors
    ///
    /// The [`ProtocolError`] for the first rule broken.
    pub fn check(&self, rules: &FrameRules) -> Result<(), ProtocolError> {
        if self.opcode.is_reserved() {
            return Err(ProtocolError::ReservedOpcode(self.opcode.as_u8()));
        }
        if self.opcode.is_control() {
            if self.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            if !self.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            // No extension defined so far may flag a control frame.
            if self.rsv != 0 {
                return Err(ProtocolError::ReservedBits);
            }
        } else if self.rsv & !rules.allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        match (rules.role, self.mask.is_some()) {
            (Role::Server, false) if !rules.dangerous_accept_unmasked_frames => {
                return Err(ProtocolError::UnmaskedFrame)
            }
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        if self.payload_len > rules.max_frame_size {
            return Err(ProtocolError::FrameTooLarge {
                len: self.payload_len,
                max: rules.max_frame_size,
            });
        }
        Ok(())
    }

    /// The encoded size of this header.
    pub const fn encoded_len(&self) -> usize {
        let len = match self.payload_len {
            0..=125 => 2,
            126..=0xffff => 4,
            _ => 10,
        };
        if self.mask.is_some() {
            len + 4
        } else {
            len
        }
    }

    /// Encodes the header into `out`, using the shortest length form, and returns its size.
    pub fn encode(&self, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            n @ 0..=125 => {
                out[1] = mask_bit | n as u8;
                2
            }
            n @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
                4
            }
            n => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&n.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        pos
    }

    /// Appends the encoded header to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = self.encode(&mut buf);
        out.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use hex_literal::hex;
    use proptest::prelude::*;

    use super::*;

    fn server_rules() -> FrameRules {
        FrameRules {
            role: Role::Server,
            allowed_rsv: 0,
            max_frame_size: 1 << 20,
            dangerous_accept_unmasked_frames: false,
        }
    }

    fn client_rules() -> FrameRules {
        FrameRules {
            role: Role::Client,
            ..server_rules()
        }
    }

    fn decode_all(buf: &[u8]) -> (FrameHeader, usize) {
        // Every strict prefix is "need more"; the whole buffer decodes.
        let (h, n) = FrameHeader::decode(buf).unwrap().unwrap();
        for split in 0..n {
            assert_eq!(
                FrameHeader::decode(&buf[..split]).unwrap(),
                None,
                "split {split}"
            );
        }
        (h, n)
    }

    #[test]
    fn rfc6455_section_5_7_examples() {
        // A single-frame unmasked text message "Hello".
        let (h, n) = decode_all(&hex!("810548656c6c6f"));
        assert_eq!(
            (h.fin, h.opcode, h.mask, h.payload_len, n),
            (true, OpCode::TEXT, None, 5, 2)
        );
        h.check(&client_rules()).unwrap();
        // A single-frame masked text message "Hello".
        let frame = hex!("818537fa213d7f9f4d5158");
        let (h, n) = decode_all(&frame);
        assert_eq!(h.mask, Some(hex!("37fa213d")));
        assert_eq!(n, 6);
        let mut payload = frame[n..].to_vec();
        crate::protocol::mask::apply_mask(&mut payload, h.mask.unwrap(), 0);
        assert_eq!(payload, b"Hello");
        h.check(&server_rules()).unwrap();
        // A fragmented unmasked text message: "Hel" then "lo".
        let (h, _) = decode_all(&hex!("010348656c"));
        assert_eq!((h.fin, h.opcode), (false, OpCode::TEXT));
        let (h, _) = decode_all(&hex!("80026c6f"));
        assert_eq!((h.fin, h.opcode), (true, OpCode::CONTINUE));
        // Unmasked ping "Hello", masked pong "Hello".
        let (h, _) = decode_all(&hex!("890548656c6c6f"));
        assert_eq!(h.opcode, OpCode::PING);
        let (h, _) = decode_all(&hex!("8a8537fa213d7f9f4d5158"));
        assert_eq!(h.opcode, OpCode::PONG);
        // 256 bytes binary in one unmasked frame; 64 KiB in one unmasked frame.
        let (h, n) = decode_all(&hex!("827e0100"));
        assert_eq!((h.payload_len, n), (256, 4));
        let (h, n) = decode_all(&hex!("827f0000000000010000"));
        assert_eq!((h.payload_len, n), (65536, 10));
    }

    #[test]
    fn encode_matches_rfc_bytes() {
        let h = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::TEXT,
            mask: Some(hex!("37fa213d")),
            payload_len: 5,
        };
        let mut out = Vec::new();
        h.encode_into(&mut out);
        assert_eq!(out, hex!("818537fa213d"));
        let h = FrameHeader {
            opcode: OpCode::BINARY,
            mask: None,
            payload_len: 65536,
            ..h
        };
        let mut out = Vec::new();
        h.encode_into(&mut out);
        assert_eq!(out, hex!("827f0000000000010000"));
    }

    #[test]
    fn top_bit_of_64_bit_length_is_rejected() {
        assert_eq!(
            FrameHeader::decode(&hex!("827f8000000000000000")),
            Err(ProtocolError::LengthOverflow)
        );
    }

    #[test]
    fn rules() {
        let masked = |b0: u8, len: u8| [b0, 0x80 | len, 1, 2, 3, 4];
        let check = |bytes: &[u8], rules: &FrameRules| {
            FrameHeader::decode(bytes).unwrap().unwrap().0.check(rules)
        };
        let s = server_rules();
        for op in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
            assert_eq!(
                check(&masked(0x80 | op, 0), &s),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        for rsv in [0x40u8, 0x20, 0x10] {
            assert_eq!(
                check(&masked(0x81 | rsv, 0), &s),
                Err(ProtocolError::ReservedBits)
            );
        }
        let deflate = FrameRules {
            allowed_rsv: RSV1,
            ..s
        };
        assert_eq!(check(&masked(0xc1, 0), &deflate), Ok(()));
        assert_eq!(
            check(&masked(0xa1, 0), &deflate),
            Err(ProtocolError::ReservedBits)
        );
        assert_eq!(
            check(&masked(0xc9, 0), &deflate),
            Err(ProtocolError::ReservedBits)
        );
        assert_eq!(check(&masked(0x89, 125), &s), Ok(()));
        assert_eq!(
            check(&[0x89, 0xfe, 0, 126, 1, 2, 3, 4], &s),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(
            check(&masked(0x09, 0), &s),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(check(&[0x81, 0x00], &s), Err(ProtocolError::UnmaskedFrame));
        let lax = FrameRules {
            dangerous_accept_unmasked_frames: true,
            ..s
        };
        assert_eq!(check(&[0x81, 0x00], &lax), Ok(()));
        assert_eq!(
            check(&masked(0x81, 0), &client_rules()),
            Err(ProtocolError::MaskedFrame)
        );
        let small = FrameRules {
            max_frame_size: 10,
            ..s
        };
        assert_eq!(
            check(&masked(0x82, 11), &small),
            Err(ProtocolError::FrameTooLarge { len: 11, max: 10 })
        );
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        (0u8..16).prop_map(OpCode::from_u8)
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            fin: bool,
            rsv in 0u8..8,
            opcode in any_opcode(),
            mask: Option<[u8; 4]>,
            payload_len in prop_oneof![0u64..=130, 65_530u64..=65_540, 0u64..(1 << 63)],
        ) {
            let h = FrameHeader { fin, rsv, opcode, mask, payload_len };
            let mut buf = [0u8; MAX_HEADER_LEN];
            let n = h.encode(&mut buf);
            prop_assert_eq!(n, h.encoded_len());
            prop_assert_eq!(FrameHeader::decode(&buf[..n]).unwrap(), Some((h, n)));
            for split in 0..n {
                prop_assert_eq!(FrameHeader::decode(&buf[..split]).unwrap(), None);
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(Some((h, n))) = FrameHeader::decode(&bytes) {
                prop_assert!(n <= bytes.len() && n <= MAX_HEADER_LEN);
                let _ = h.check(&server_rules());
            }
        }
    }

    #[test]
    fn opcode_round_trip() {
        for b in 0u8..16 {
            assert_eq!(OpCode::from_u8(b).as_u8(), b);
            assert_eq!(OpCode::from_u8(b).is_control(), b >= 8);
            assert_eq!(
                OpCode::from_u8(b).is_reserved(),
                matches!(b, 3..=7 | 11..=15)
            );
        }
    }
}
