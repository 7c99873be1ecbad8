"""How many statements MariaDB/MySQL itself finds in each text.

Reads a JSON list of {"sql_mode": "...", "text": "..."} on stdin; for each,
sets the session's sql_mode, sends the text as one COM_QUERY with
CLIENT_MULTI_STATEMENTS (PyMySQL) and counts the results the server sends
back. Prints a JSON list: the count, or "error: <message>" when the server
refuses the text (the count before the error is lost with it).
"""

import json
import sys

import pymysql
from pymysql.constants import CLIENT


def count(conn, sql_mode, text):
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
    try:
        with conn.cursor() as cur:
            cur.execute(text)
            n = 1
            while cur.nextset():
                n += 1
            return n
    except pymysql.MySQLError as e:
        return "error: %s" % (e,)


def main():
    cases = json.load(sys.stdin)
    conn = pymysql.connect(
        host="127.0.0.1",
        port=3306,
        user="root",
        password="",
        client_flag=CLIENT.MULTI_STATEMENTS,
        autocommit=True,
    )
    out = []
    for case in cases:
        out.append(count(conn, case["sql_mode"], case["text"]))
        # A failed multi-statement text can leave results unread: start clean.
        conn.close()
        conn = pymysql.connect(
            host="127.0.0.1",
            port=3306,
            user="root",
            password="",
            client_flag=CLIENT.MULTI_STATEMENTS,
            autocommit=True,
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
