"""ESEARCH, SEARCHRES, CONTEXT=SEARCH and WITHIN without a server: the parser's tables for
RETURN options, "$", OLDER/YOUNGER and CANCELUPDATE, and the result rules of
rmail.server.imap.results (RFC 4731, 5182, 5267, 5032)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rmail.server.imap import commands as c
from rmail.server.imap import parser
from rmail.server.imap.encode import Atom, esearch_response
from rmail.server.imap.results import ResultList, modseq_items, return_data, saved_items
from rmail.server.imap.wire import Frame, Framer

R = c.SearchReturn
ALL = c.SearchAll()


def parse(data: bytes) -> c.Command:
    framer = Framer()
    framer.receive_data(data + b"\r\n")
    frame = framer.next_event()
    assert isinstance(frame, Frame)
    return parser.parse_command(frame)


GOOD = [
    (b"a SEARCH RETURN (MIN COUNT) ALL", c.Search("a", None, ALL, False, R(min=True, count=True))),
    (b"a SEARCH RETURN () ALL", c.Search("a", None, ALL, False, R(all=True))),
    (b"a UID SEARCH return (max all) ALL", c.Search("a", None, ALL, True, R(max=True, all=True))),
    (b"a SEARCH RETURN (SAVE) ALL", c.Search("a", None, ALL, False, R(save=True))),
    (b"a SEARCH RETURN (UPDATE CONTEXT COUNT) ALL",
     c.Search("a", None, ALL, False, R(update=True, context=True, count=True))),
    (b"a SEARCH RETURN (PARTIAL 1:10) ALL", c.Search("a", None, ALL, False, R(partial=(1, 10)))),
    # RFC 5267 §5: "A range 500:400 is the same as 400:500."
    (b"a SEARCH RETURN (PARTIAL 500:400) ALL",
     c.Search("a", None, ALL, False, R(partial=(400, 500)))),
    (b"a SEARCH RETURN (MIN) CHARSET UTF-8 ALL", c.Search("a", "UTF-8", ALL, False, R(min=True))),
    (b"a SEARCH $", c.Search("a", None, c.SearchSeq(c.SAVED_RESULT, False))),
    (b"a UID SEARCH UID $ SMALLER 4096", c.Search("a", None, c.SearchAnd((
        c.SearchSeq(c.SAVED_RESULT, True), c.SearchSize(False, 4096))), True)),
    (b"a SEARCH (OR $ 1,3000:3021) ALL", c.Search("a", None, c.SearchAnd((
        c.SearchOr(c.SearchSeq(c.SAVED_RESULT, False),
                   c.SearchSeq(c.SeqSet(((1, 1), (3000, 3021))), False)), ALL)))),
    (b"a SEARCH YOUNGER 259200 UNSEEN", c.Search("a", None, c.SearchAnd((
        c.SearchAge(False, 259200), c.SearchFlag("\\Seen", False))))),
    (b"a SEARCH older 1", c.Search("a", None, c.SearchAge(True, 1))),
    (b"a FETCH $ FLAGS", c.Fetch("a", c.SAVED_RESULT, (c.FetchAtt("FLAGS"),))),
    (b"a UID STORE $ +FLAGS.SILENT (\\Deleted)",
     c.Store("a", c.SAVED_RESULT, c.StoreMode.ADD, True, ("\\Deleted",), True)),
    (b'a COPY $ "Other Messages"', c.Copy("a", c.SAVED_RESULT, "Other Messages")),
    (b"a UID MOVE $ Trash", c.Move("a", c.SAVED_RESULT, "Trash", True)),
    (b"a UID EXPUNGE $", c.UidExpunge("a", c.SAVED_RESULT)),
    (b'a CANCELUPDATE "B01"', c.CancelUpdate("a", ("B01",))),
    (b'a CANCELUPDATE "B01" "B02" "B01"', c.CancelUpdate("a", ("B01", "B02"))),
]


@pytest.mark.parametrize("line, command", GOOD, ids=[g[0].decode() for g in GOOD])
def test_parses(line: bytes, command: c.Command) -> None:
    assert parse(line) == command


BAD = [
    b"a SEARCH RETURN (PARTIAL 1) ALL",          # imaptest search-partial: "broken results"
    b"a SEARCH RETURN (PARTIAL 1:*) ALL",
    b"a SEARCH RETURN (PARTIAL *:1) ALL",
    b"a SEARCH RETURN (PARTIAL 0:5) ALL",        # partial-range is nz-number
    b"a SEARCH RETURN (ALL PARTIAL 1:5) ALL",    # RFC 5267 §4.4: one PARTIAL or ALL
    b"a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
    b"a SEARCH RETURN (ALL ALL) ALL",
    b"a SEARCH RETURN (FROB) ALL",
    b"a SEARCH RETURN ALL",
    b"a SEARCH RETURN (MIN)",
    b"a SEARCH $1",
    b"a SEARCH $Junk",
    b"a FETCH $,1 FLAGS",                        # RFC 5182 §3: "$" stands alone
    b"a SEARCH OLDER 0",                         # RFC 5032 §3: nz-number
    b"a SEARCH YOUNGER",
    b"a CANCELUPDATE",
    b"a CANCELUPDATE B01",                       # RFC 5267 §5: quoted
]


@pytest.mark.parametrize("line", BAD, ids=[b.decode() for b in BAD])
def test_refuses_with_bad(line: bytes) -> None:
    with pytest.raises(parser.ParseError) as info:
        parse(line)
    assert info.value.status == "BAD" and not info.value.drops_saved_result


@pytest.mark.parametrize("line, drops", [
    (b"a SEARCH RETURN (SAVE) CHARSET KOI8-R ALL", True),
    (b"a SEARCH RETURN (MIN SAVE) CHARSET KOI8-R ALL", True),
    (b"a SEARCH RETURN (MIN) CHARSET KOI8-R ALL", False),
    (b"a SEARCH CHARSET KOI8-R (OR $ 1,3000:3021) ALL", False),
    (b"a SEARCH RETURN (SAVE) " + b"ALL " * 1000 + b"ALL", True),
])
def test_a_refused_save_empties_the_saved_result(line: bytes, drops: bool) -> None:
    """RFC 5182 §2.1: a SEARCH with SAVE answered NO sets "$" to empty; without SAVE, NO
    leaves it as it was."""
    with pytest.raises(parser.ParseError) as info:
        parse(line)
    assert info.value.status == "NO" and info.value.drops_saved_result is drops


# -- results ----------------------------------------------------------------------------------

def data(numbers: list[int], returns: c.SearchReturn, **kw: int) -> bytes:
    return esearch_response("T", False, return_data(numbers, returns, **kw))


@pytest.mark.parametrize("numbers, returns, wire", [
    # RFC 4731 §3.1's examples.
    ([2, 10, 11], R(min=True, count=True), b'* ESEARCH (TAG "T") MIN 2 COUNT 3\r\n'),
    ([2, 10, 11], R(all=True), b'* ESEARCH (TAG "T") ALL 2,10:11\r\n'),
    ([], R(min=True, max=True, all=True), b'* ESEARCH (TAG "T")\r\n'),
    ([], R(count=True), b'* ESEARCH (TAG "T") COUNT 0\r\n'),
    ([7], R(min=True, max=True), b'* ESEARCH (TAG "T") MIN 7 MAX 7\r\n'),
    # RFC 5267 §4.4: the range as asked, and what of it exists (NIL past the end).
    ([1, 2, 4, 5], R(partial=(2, 10)), b'* ESEARCH (TAG "T") PARTIAL (2:10 2,4:5)\r\n'),
    ([1, 2, 4, 5], R(partial=(5, 10)), b'* ESEARCH (TAG "T") PARTIAL (5:10 NIL)\r\n'),
    ([], R(update=True), b'* ESEARCH (TAG "T")\r\n'),
    # RFC 5267 §3.2: a sorted ALL keeps its order; ranges only for ascending runs.
    ([23765, 23764, 23763, 23761, 5, 6, 7], R(all=True),
     b'* ESEARCH (TAG "T") ALL 23765,23764,23763,23761,5:7\r\n'),
    ([23765, 23764], R(min=True, max=True), b'* ESEARCH (TAG "T") MIN 23765 MAX 23764\r\n'),
])
def test_return_data(numbers: list[int], returns: c.SearchReturn, wire: bytes) -> None:
    assert data(numbers, returns) == wire


def test_the_modseq_item_comes_last() -> None:
    # RFC 4731 §3.2's a4: MIN 2 COUNT 10 MODSEQ 917162500
    assert data(list(range(2, 12)), R(min=True, count=True), modseq=917162500) == \
        b'* ESEARCH (TAG "T") MIN 2 COUNT 10 MODSEQ 917162500\r\n'
    assert esearch_response("a5", True, [Atom("COUNT"), 0]) == b'* ESEARCH (TAG "a5") UID COUNT 0\r\n'


@pytest.mark.parametrize("returns, saved", [
    # RFC 5182 §2.4, Example 10, over the result 2,10:15,21.
    (R(all=True, save=True), [2, 10, 11, 12, 13, 14, 15, 21]),
    (R(save=True, min=True), [2]),
    (R(save=True, max=True), [21]),
    (R(save=True, min=True, max=True), [2, 21]),
    (R(save=True, min=True, max=True, count=True), [2, 10, 11, 12, 13, 14, 15, 21]),
    (R(save=True, min=True, all=True), [2, 10, 11, 12, 13, 14, 15, 21]),
    (R(save=True), [2, 10, 11, 12, 13, 14, 15, 21]),
])
def test_saved_result_follows_rfc_5182_table(returns: c.SearchReturn, saved: list[int]) -> None:
    found = [2, 10, 11, 12, 13, 14, 15, 21]
    assert saved_items(found, returns) == saved
    assert saved_items([], returns) == []


@pytest.mark.parametrize("returns, which", [
    # RFC 4731 §3.2: one MIN or MAX: that message; MIN and MAX alone: both; else all.
    (R(min=True), [1]), (R(max=True), [9]), (R(min=True, max=True), [1, 9]),
    (R(min=True, count=True), [1, 5, 9]), (R(all=True), [1, 5, 9]),
])
def test_modseq_items(returns: c.SearchReturn, which: list[int]) -> None:
    assert modseq_items([1, 5, 9], returns) == which


def test_mailbox_order_updates_at_position_zero() -> None:
    result = ResultList([4])
    assert result.add([2, 1, 4]) == [(0, [1, 2])]       # 4 is in already
    assert result.remove([3, 1]) == [(0, [1])]          # 3 never was
    assert result.uids() == [2, 4] and 2 in result and 1 not in result and len(result) == 2
    assert result.add([]) == [] and result.remove([9]) == []


def test_sorted_updates_carry_positions() -> None:
    # RFC 5267 §4.3.3: a result 2734:2735 that gains 2731:2733, which the order puts first,
    # reads "ADDTO (1 2731:2733)" (the RFC's preferred form).
    result = ResultList([2734, 2735], keys=[1, 2])
    order = {2731: 0, 2732: 0, 2733: 0}
    assert result.add([2733, 2731, 2732], order.__getitem__) == [(1, [2731, 2732, 2733])]
    assert result.uids() == [2731, 2732, 2733, 2734, 2735]
    # Two runs: each pair's position holds once the pairs before it are applied (§4.3.4).
    assert result.remove([2731, 2732, 2735]) == [(1, [2731, 2732]), (3, [2735])]
    assert result.uids() == [2733, 2734]
    with pytest.raises(ValueError):
        result.add([1])


def apply(old: list[int], pairs: list[tuple[int, list[int]]], *, add: bool) -> list[int]:
    """What a client does with ADDTO/REMOVEFROM pairs (RFC 5267 §4.3.3–4.3.4)."""
    out = list(old)
    for position, uids in pairs:
        if add:
            out[position - 1:position - 1] = uids
        else:
            assert out[position - 1:position - 1 + len(uids)] == uids
            del out[position - 1:position - 1 + len(uids)]
    return out


@given(st.dictionaries(st.integers(1, 60), st.integers(0, 5), max_size=30),
       st.dictionaries(st.integers(61, 120), st.integers(0, 5), max_size=30),
       st.sets(st.integers(1, 60)))
def test_a_client_applying_the_pairs_has_the_servers_result(
        before: dict[int, int], new: dict[int, int], gone: set[int]) -> None:
    keys = {**before, **new}
    result = ResultList(list(before), keys=[before[u] for u in before])
    shown = result.uids()
    shown = apply(shown, result.remove(gone), add=False)
    assert shown == result.uids()
    shown = apply(shown, result.add(list(new), keys.__getitem__), add=True)
    assert shown == result.uids() == sorted(set(before) - gone | set(new),
                                            key=lambda u: (keys[u], u))


def test_encoded_pairs() -> None:
    assert esearch_response("C01", True, [Atom("ADDTO"), (1, Atom("2731:2733"))]) == \
        b'* ESEARCH (TAG "C01") UID ADDTO (1 2731:2733)\r\n'
