"""Follows one Server-Sent Events stream with httpx and httpx-sse (a client
nobody in this project wrote) and prints what it reads, one JSON line each:

  {"status": 200, "content_type": ...}      the answer's head
  {"id": ..., "event": ..., "data": ...}    every event, data parsed as JSON
  {"end": "closed"}                         the server ended the stream

A non-200 answer prints {"status": code, "body": ...} and exits 3.

usage: follow.py URL [--token T] [--last-event-id N] [--until-id N]
"""

import argparse
import json
import sys

import httpx
from httpx_sse import connect_sse


def say(line):
    print(json.dumps(line), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--token")
    parser.add_argument("--last-event-id")
    parser.add_argument("--until-id", type=int, help="stop after the event with this id")
    args = parser.parse_args()
    headers = {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    if args.last_event_id is not None:
        headers["Last-Event-ID"] = args.last_event_id
    # No read timeout: the stream sends keep-alive comments, and the test
    # that runs this bounds how long it waits for each line.
    with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
        with connect_sse(client, "GET", args.url, headers=headers) as source:
            response = source.response
            if response.status_code != 200:
                response.read()
                say({"status": response.status_code, "body": response.json()})
                return 3
            say({"status": 200, "content_type": response.headers.get("content-type")})
            for event in source.iter_sse():
                data = json.loads(event.data) if event.data else None
                say({"id": event.id, "event": event.event, "data": data, "retry": event.retry})
                if args.until_id is not None and event.id and int(event.id) >= args.until_id:
                    return 0
    say({"end": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
