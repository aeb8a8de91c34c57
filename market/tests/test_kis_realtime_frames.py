"""KIS WebSocket frames: parsing, registration messages, AES decryption, typed refusals (no sockets here).

The example frames are the exact texts of shared/kis/fake_responses.md §13."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest

from market.kis.realtime import frames
from market.kis.realtime.errors import (
    AppKeyInUseError,
    InvalidApprovalError,
    RealtimeError,
    RealtimeProtocolError,
    SubscriptionLimitError,
)
from market.kis.realtime.frames import (
    ControlAnswer,
    DataFrame,
    PingPong,
    decode_records,
    decrypt_payload,
    encrypt_payload,
    parse_frame,
    register_message,
    unregister_message,
)
from market.kis.realtime.records import (
    FILL_NOTICE_FIELDS,
    ORDER_BOOK_FIELDS,
    TRADE_FIELDS,
    FillNotice,
    OrderBook,
    Tick,
    parse_fill_notice,
    parse_order_books,
    parse_ticks,
)
from market.tests.fake_kis_ws import FakeKisWebSocketServer

APPROVAL = "3f6a1c2e-8b7d-4e9f-a0b1-c2d3e4f5a6b7"
SUBSCRIBE_EXAMPLE = ('{"header": {"approval_key": "3f6a1c2e-8b7d-4e9f-a0b1-c2d3e4f5a6b7", "custtype": "P", "tr_type": "1", '
                     '"content-type": "utf-8"}, "body": {"input": {"tr_id": "H0STCNT0", "tr_key": "005930"}}}')
ACK_EXAMPLE = ('{"header": {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"}, "body": {"rt_cd": "0", '
               '"msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS", "output": {"iv": "0123456789abcdef", '
               '"key": "abcdefghijklmnopqrstuvwxyz012345"}}}')
OVER_CAP_EXAMPLE = ('{"header": {"tr_id": "H0STCNT0", "tr_key": "035720", "encrypt": "N"}, "body": {"rt_cd": "1", '
                    '"msg_cd": "OPSP0008", "msg1": "MAX SUBSCRIBE OVER"}}')
ALREADY_EXAMPLE = ('{"header": {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"}, "body": {"rt_cd": "1", '
                   '"msg_cd": "OPSP0002", "msg1": "ALREADY IN SUBSCRIBE"}}')
IN_USE_EXAMPLE = ('{"header": {"tr_id": "(null)", "tr_key": "", "encrypt": "N"}, "body": {"rt_cd": "9", '
                  '"msg_cd": "OPSP8996", "msg1": "ALREADY IN USE appkey"}}')
PINGPONG_EXAMPLE = '{"header": {"tr_id": "PINGPONG", "datetime": "20260105093000"}}'
ONE_TRADE = (
    "0|H0STCNT0|001|005930^093012^72900^5^-300^-0.41^72950.12^73100^73300^72700^73000^72900^15^1234567^90061234500"
    "^4021^3890^-131^96.74^612345^592345^5^49.17^78.21^090000^5^-200^091523^5^-400^092840^2^200^20260105^20^N^30512"
    "^45120^512300^623400^0.02^1578342^78.22^0^N^73200"
)
TWO_TRADES = (
    "0|H0STCNT0|002|005930^093012^72900^5^-300^-0.41^72950.12^73100^73300^72700^73000^72900^15^1234567^90061234500"
    "^4021^3890^-131^96.74^612345^592345^5^49.17^78.21^090000^5^-200^091523^5^-400^092840^2^200^20260105^20^N^30512"
    "^45120^512300^623400^0.02^1578342^78.22^0^N^73200^005930^093013^72900^5^-300^-0.41^72950.12^73100^73300^72700"
    "^73000^72900^3^1234570^90061453200^4021^3890^-131^96.74^612345^592345^5^49.17^78.21^090000^5^-200^091523^5^-400"
    "^092840^2^200^20260105^20^N^30512^45120^512300^623400^0.02^1578342^78.22^0^N^73200"
)
NOTICE_ACK_EXAMPLE = ('{"header": {"tr_id": "H0STCNI0", "tr_key": "myhtsid", "encrypt": "Y"}, "body": {"rt_cd": "0", '
                      '"msg_cd": "OPSP0000", "msg1": "SUBSCRIBE SUCCESS", "output": {"iv": "0123456789abcdef", '
                      '"key": "abcdefghijklmnopqrstuvwxyz012345"}}}')
ENCRYPTED_NOTICE = (
    "1|H0STCNI0|001|UnONKZpCMkOvd1h4bKzolSCWgRZDeZqaQxl8lUUw/h7u0MK33LEiMAByt0uAYCFVs9xza26v8l7bVAuGcEkCO+jnK4hxti"
    "a97Qmt2jlbxpefSaMOTUGqw62jEJ0/8TWRpIqzhdNHHsh//xyushDpIboSKIGOOqqqb9MdRBjamdU="
)
NOTICE_PLAINTEXT = "myhtsid^5012345601^0000117057^^02^0^00^0^005930^10^71200^090012^0^2^2^91252^10^홍길동^^1^Y^^10^^삼성전자^71200"


# ---------------------------------------------------------------------------------------------- outgoing
def test_register_message_is_the_documented_subscribe_text() -> None:
    assert json.loads(register_message(APPROVAL, "H0STCNT0", "005930")) == json.loads(SUBSCRIBE_EXAMPLE)


def test_unregister_message_differs_only_in_tr_type() -> None:
    expected = json.loads(SUBSCRIBE_EXAMPLE)
    expected["header"]["tr_type"] = "2"
    assert json.loads(unregister_message(APPROVAL, "H0STCNT0", "005930")) == expected


# ---------------------------------------------------------------------------------------------- control answers
def test_subscribe_answer_carries_the_aes_key_and_iv() -> None:
    answer = parse_frame(ACK_EXAMPLE)
    assert isinstance(answer, ControlAnswer)
    assert (answer.tr_id, answer.tr_key, answer.msg_cd) == ("H0STCNT0", "005930", "OPSP0000")
    assert (answer.key, answer.iv) == ("abcdefghijklmnopqrstuvwxyz012345", "0123456789abcdef")
    assert answer.error is None
    notice_answer = parse_frame(NOTICE_ACK_EXAMPLE)
    assert isinstance(notice_answer, ControlAnswer) and notice_answer.encrypted


def test_already_subscribed_is_harmless() -> None:
    answer = parse_frame(ALREADY_EXAMPLE)
    assert isinstance(answer, ControlAnswer) and answer.rt_cd == "1"
    assert answer.error is None


def test_over_cap_answer_is_a_subscription_limit_error_naming_40_and_the_symbol() -> None:
    answer = parse_frame(OVER_CAP_EXAMPLE)
    assert isinstance(answer, ControlAnswer)
    error = answer.error
    assert isinstance(error, SubscriptionLimitError)
    assert error.cap == 40 and error.code == "OPSP0008"
    assert "40" in error.user_message and "035720" in error.user_message and "OPSP0008" in error.user_message


def test_app_key_in_use_and_invalid_approval_are_typed() -> None:
    in_use = parse_frame(IN_USE_EXAMPLE)
    assert isinstance(in_use, ControlAnswer)
    assert isinstance(in_use.error, AppKeyInUseError)
    assert "OPSP8996" in in_use.error.user_message and "앱키" in in_use.error.user_message

    invalid = parse_frame(json.dumps({"header": {"tr_id": "H0STCNT0", "tr_key": "005930", "encrypt": "N"},
                                      "body": {"rt_cd": "9", "msg_cd": "OPSP0011",
                                               "msg1": "invalid approval : NOT FOUND"}}))
    assert isinstance(invalid, ControlAnswer)
    assert isinstance(invalid.error, InvalidApprovalError)
    assert "OPSP0011" in invalid.error.user_message

    other = parse_frame(json.dumps({"header": {"tr_id": "H0STCNT0", "tr_key": "005930"},
                                    "body": {"rt_cd": "1", "msg_cd": "OPSP0007", "msg1": "INTERNAL ERROR"}}))
    assert isinstance(other, ControlAnswer)
    assert type(other.error) is RealtimeError and other.error.code == "OPSP0007"


def test_pingpong_keeps_the_exact_text_for_the_echo() -> None:
    frame = parse_frame(PINGPONG_EXAMPLE)
    assert frame == PingPong(PINGPONG_EXAMPLE)


@pytest.mark.parametrize("text", ["", "garbage", "[1, 2]", '{"body": {}}', "0|H0STCNT0|x|a^b",
                                  '{"header": {"tr_id": "H0STCNT0"}}'])
def test_malformed_frames_are_protocol_errors(text: str) -> None:
    with pytest.raises(RealtimeProtocolError):
        parse_frame(text)


# ---------------------------------------------------------------------------------------------- trade ticks
def test_one_record_trade_frame() -> None:
    frame = parse_frame(ONE_TRADE)
    assert frame == DataFrame(encrypted=False, tr_id="H0STCNT0", count=1, payload=ONE_TRADE.split("|", 3)[3])
    [tick] = decode_records(frame)
    assert tick == Tick(
        code="005930", time=dt.time(9, 30, 12), price=72_900, change=-300, change_rate=-0.41, open=73_100,
        high=73_300, low=72_700, volume=15, cumulative_volume=1_234_567, cumulative_amount=90_061_234_500,
        ask1=73_000, bid1=72_900, business_date=dt.date(2026, 1, 5), halted=False, vi_reference_price=73_200,
        market_phase="20",
    )
    assert tick.previous_close == 73_200


def test_multi_record_trade_frame_gives_every_record_in_order() -> None:
    frame = parse_frame(TWO_TRADES)
    assert isinstance(frame, DataFrame) and frame.count == 2
    first, second = decode_records(frame)
    assert isinstance(first, Tick) and isinstance(second, Tick)
    assert (first.time, first.volume, first.cumulative_volume) == (dt.time(9, 30, 12), 15, 1_234_567)
    assert (second.time, second.volume, second.cumulative_volume) == (dt.time(9, 30, 13), 3, 1_234_570)
    assert second.cumulative_volume - first.cumulative_volume == second.volume


def test_trade_records_with_appended_fields_are_read_by_the_known_table() -> None:
    record = ONE_TRADE.split("|", 3)[3].split("^")
    longer = record + ["X1", "X2"]  # KIS appends fields now and then
    [first, second] = parse_ticks("^".join(longer + longer), 2)
    assert first == second == parse_ticks("^".join(record), 1)[0]


def test_trade_frame_with_missing_fields_is_refused() -> None:
    payload = "^".join(ONE_TRADE.split("|", 3)[3].split("^")[:-1])
    with pytest.raises(RealtimeProtocolError):
        parse_ticks(payload, 1)
    with pytest.raises(RealtimeProtocolError):
        parse_ticks(TWO_TRADES.split("|", 3)[3], 3)  # count does not divide the fields


def test_down_sign_makes_an_unsigned_change_negative() -> None:
    values = ONE_TRADE.split("|", 3)[3].split("^")
    values[TRADE_FIELDS.index("PRDY_VRSS")] = "300"
    values[TRADE_FIELDS.index("PRDY_CTRT")] = "0.41"
    [tick] = parse_ticks("^".join(values), 1)
    assert (tick.change, tick.change_rate, tick.previous_close) == (-300, -0.41, 73_200)


def test_field_tables_match_the_fact_sheet_counts() -> None:
    assert (len(TRADE_FIELDS), len(ORDER_BOOK_FIELDS), len(FILL_NOTICE_FIELDS)) == (46, 59, 26)
    assert FILL_NOTICE_FIELDS.index("CNTG_YN") == 13  # "the 14th field tells fills from order notices"


# ---------------------------------------------------------------------------------------------- order book
def test_order_book_frame() -> None:
    fake = FakeKisWebSocketServer(seed=1)  # used only as a frame builder, never started
    frame = parse_frame(fake.book_frame("005930"))
    assert isinstance(frame, DataFrame) and frame.tr_id == "H0STASP0"
    [book] = decode_records(frame)
    assert isinstance(book, OrderBook)
    values = frame.payload.split("^")
    assert book.code == "005930"
    assert book.asks == tuple(int(values[ORDER_BOOK_FIELDS.index(f"ASKP{n}")]) for n in range(1, 11))
    assert book.bid_sizes == tuple(int(values[ORDER_BOOK_FIELDS.index(f"BIDP_RSQN{n}")]) for n in range(1, 11))
    assert book.asks[0] > book.bids[0] and list(book.asks) == sorted(book.asks)
    assert list(book.bids) == sorted(book.bids, reverse=True)
    assert book.total_ask_size == sum(book.ask_sizes) and book.total_bid_size == sum(book.bid_sizes)
    assert parse_order_books(frame.payload, 1) == [book]


# ---------------------------------------------------------------------------------------------- fill notices
def test_documented_encrypted_notice_decrypts_with_the_answer_key() -> None:
    answer = parse_frame(NOTICE_ACK_EXAMPLE)
    frame = parse_frame(ENCRYPTED_NOTICE)
    assert isinstance(answer, ControlAnswer) and isinstance(frame, DataFrame) and frame.encrypted
    assert answer.key and answer.iv
    assert decrypt_payload(frame.payload, answer.key, answer.iv) == NOTICE_PLAINTEXT

    [notice] = decode_records(frame, (answer.key, answer.iv))
    assert notice == FillNotice(
        customer_id="myhtsid", account_no="5012345601", order_no="117057", original_order_no="", side="buy",
        correction="0", order_kind="00", code="005930", quantity=10, price=71_200, time=dt.time(9, 0, 12),
        rejected=False, is_fill=True, acceptance="2", branch_no="91252", order_quantity=10, order_price=71_200,
        name="삼성전자",
    )


def test_encrypted_frame_needs_the_right_key() -> None:
    frame = parse_frame(ENCRYPTED_NOTICE)
    assert isinstance(frame, DataFrame)
    with pytest.raises(RealtimeProtocolError):
        decode_records(frame)  # no key yet
    with pytest.raises(RealtimeProtocolError):
        decode_records(frame, ("zyxwvutsrqponmlkjihgfedcba543210", "fedcba9876543210"))


def test_encrypt_and_decrypt_round_trip_korean_text() -> None:
    key, iv = "K" * 32, "I" * 16
    text = FakeKisWebSocketServer.fill_notice_text("hts", name="카카오", side="sell", is_fill=False)
    assert decrypt_payload(encrypt_payload(text, key, iv), key, iv) == text


def test_fill_notice_tolerates_fields_added_by_kis() -> None:
    text = FakeKisWebSocketServer.fill_notice_text("hts", extra_fields=["A", "B", "20260105"])
    assert len(text.split("^")) == 29
    notice = parse_fill_notice(text)
    assert (notice.code, notice.quantity, notice.price, notice.order_price) == ("005930", 10, 71_200, 71_200)
    with pytest.raises(RealtimeProtocolError):
        parse_fill_notice("^".join(NOTICE_PLAINTEXT.split("^")[:25]))


def test_order_notice_and_sell_side() -> None:
    text = FakeKisWebSocketServer.fill_notice_text("hts", side="sell", is_fill=False, rejected=True,
                                                   order_no="0000000042", original_order_no="0000000041")
    notice = parse_fill_notice(text)
    assert (notice.side, notice.is_fill, notice.rejected) == ("sell", False, True)
    assert (notice.order_no, notice.original_order_no) == ("42", "41")


# ---------------------------------------------------------------------------------------------- unknown TRs
def test_unknown_tr_is_logged_once_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="market.kis.realtime")
    frames._unknown_trs_logged.discard("H0STMKO0")
    frame = parse_frame("0|H0STMKO0|001|005930^A^B")
    assert decode_records(frame) == []
    assert decode_records(frame) == []
    logged = [r for r in caplog.records if "H0STMKO0" in r.getMessage()]
    assert len(logged) == 1
