"""The local LB's servers read from one admin-socket answer to
`show stat; show servers state` (a release polls it several times a second)."""

import pytest

from mlops_vm.provision.local import lb_admin

# Shortened from a real answer of HAProxy 2.6: the stat CSV, an empty line, then the
# servers state table with its format version line.
STAT_HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,check_status,check_code"
ANSWER = "\n".join(
    [
        STAT_HEADER,
        "https,FRONTEND,,,1,2,,9,OPEN,,",
        "model_service,vm-1,0,0,2,3,,41,UP,L7OK,200",
        "model_service,vm-2,0,0,0,1,,7,DRAIN,* L7OK,0",
        "model_service,BACKEND,0,0,2,3,,48,UP,,",
        "",
        "1",
        "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state",
        "4 model_service 1 vm-1 10.0.0.11 2 0",
        "4 model_service 2 vm-2 10.0.0.12 2 8",
        "",
    ]
)


def test_both_tables_come_from_one_command(monkeypatch):
    sent: list[str] = []

    def command(container: str, line: str) -> str:
        sent.append(line)
        return ANSWER

    monkeypatch.setattr(lb_admin, "command", command)
    servers = lb_admin.servers("lb")
    assert sent == ["show stat; show servers state model_service"]
    assert set(servers) == {"vm-1", "vm-2"}
    assert (servers["vm-1"].current_sessions, servers["vm-1"].healthy) == (2, True)
    assert servers["vm-2"].draining and not servers["vm-2"].healthy
    assert (servers["vm-2"].check_status, servers["vm-2"].check_code) == ("L7OK", "")


def test_an_answer_without_the_second_table_is_an_unavailable_admin_socket():
    with pytest.raises(lb_admin.AdminUnavailable, match="show servers state"):
        lb_admin.split_answers(STAT_HEADER + "\nmodel_service,vm-1,0,0,0,1,,1,UP,L7OK,200\n")
