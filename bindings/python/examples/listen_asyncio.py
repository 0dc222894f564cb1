# python bindings/python/examples/listen_asyncio.py (against `alipay-msg simulate`)
import asyncio
import os
from pathlib import Path

from alipay_msg import Config
from alipay_msg.aio import Client

keys = Path("testdata/vectors/keys")  # the simulator's test keys; yours in production
config = Config(
    app_id="2021000000000001",
    app_private_key=(keys / "app_private_pkcs1.pem").read_text(),
    alipay_public_key=(keys / "alipay_public.pem").read_text(),
    endpoint=os.environ.get("ALIPAY_MSG_ENDPOINT", "127.0.0.1:7001"),  # or "production"
)


async def main() -> None:
    async with Client(config) as client:  # connected; drains and closes on exit
        async for msg in client.messages():  # verified messages only
            print(msg.msg_api, msg.biz_content)
            await msg.ack()  # SUCCESS only now (or: await msg.fail())
            break  # one message for this example


asyncio.run(main())
