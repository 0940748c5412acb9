"""A bleak backend on Bumble's software BLE stack, for straps emulated in the same process.

bleak's ``BleakScanner`` and ``BleakClient`` take ``backend=``; given :class:`BumbleScanner`
and :class:`BumbleClient` (and ``bumble=`` a :class:`BumbleCentral`), the recorder's very code
drives a real host stack (HCI, L2CAP, ATT/GATT) and a virtual controller joined by a
``LocalLink`` to the controller of the emulated strap: advertising, connection, MTU exchange,
discovery, notifications and disconnects all happen for real, only the radio is modelled
away. On real hardware the recorder passes no backend and bleak uses the platform's.

Needs the ``ble`` extra (``pip install backpop-sense[ble]``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_str
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt import Characteristic
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

_T = TypeVar("_T")

MAX_MTU = 517
"""ATT MTU the central offers; the strap's server answers with what it takes (the smaller)."""


LL_PAYLOAD_BYTES = 251
"""Link-layer payload with BLE 4.2 data length extension: one 247-byte ATT PDU (+ 4 bytes of
L2CAP) per link packet, instead of Bumble's default 27 bytes, which splits each notification
into 9 packets."""


def _uuid(u: UUID) -> str:
    return normalize_uuid_str(u.to_hex_str("-"))


class VirtualRadio:
    """Bumble devices on one in-process ``LocalLink``: what a room with straps would be.

    Examples
    --------
    >>> import asyncio
    >>> from backpop_sense.sources.bumble_backend import VirtualRadio
    >>> async def room():  # Bumble's devices are made in a running event loop
    ...     radio = VirtualRadio()
    ...     strap = radio.device("BackPop-0001", "C0:98:E5:49:00:01")
    ...     central = radio.central("central", "C0:98:E5:49:00:99")
    ...     return strap.name, central.device.name
    >>> asyncio.run(room())
    ('BackPop-0001', 'central')
    """

    def __init__(self) -> None:
        self.link = LocalLink()

    def device(self, name: str, address: str) -> Device:
        """A new device (host + virtual controller) on this radio, not powered on yet."""
        return self._device(name, address)[0]

    def central(self, name: str, address: str) -> BumbleCentral:
        """A new central on this radio, for :class:`BumbleScanner` and :class:`BumbleClient`."""
        return BumbleCentral(*self._device(name, address))

    def _device(self, name: str, address: str) -> tuple[Device, Controller]:
        controller = Controller(name, link=self.link, public_address=address)
        controller.le_acl_data_packet_length = LL_PAYLOAD_BYTES
        return Device(name=name, address=Address(address),
                      host=Host(controller, AsyncPipeSink(controller))), controller


class BumbleCentral:
    """The central's Bumble device, shared by the scanner and every client.

    Parameters
    ----------
    device : Device
        A Bumble device (from :meth:`VirtualRadio.central`, or on a real HCI transport).
    controller : Controller, optional
        Its virtual controller, when it has one (see :meth:`BumbleClient.connect`).
    """

    def __init__(self, device: Device, controller: Controller | None = None) -> None:
        self.device = device
        self.controller = controller
        # A controller creates one LE connection at a time.
        self.connect_lock = asyncio.Lock()
        self._powered = asyncio.Lock()

    async def power_on(self) -> None:
        """Power the device on once."""
        async with self._powered:
            if not self.device.powered_on:
                await self.device.power_on()


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend: the central's advertisement reports as bleak devices.

    Parameters
    ----------
    detection_callback, service_uuids, scanning_mode
        As :class:`bleak.BleakScanner`.
    bumble : BumbleCentral
        The central to scan with (passed through ``BleakScanner(..., bumble=central)``).
    """

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None, scanning_mode: str = "active", *,
                 bumble: BumbleCentral, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        self._central = bumble
        self._active = scanning_mode == "active"

    async def start(self) -> None:
        """Clear what was seen and start scanning."""
        self.seen_devices = {}
        await self._central.power_on()
        self._central.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._central.device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        """Stop scanning."""
        self._central.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self._central.device.stop_scanning()

    def _on_advertisement(self, adv: Advertisement) -> None:
        data = adv.data
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
            AdvertisingData.SHORTENED_LOCAL_NAME)
        uuids = [_uuid(u) for t in (
            AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
            AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
        ) for u in (data.get(t) or [])]
        if not self.is_allowed_uuid(uuids):
            return
        maker = data.get(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)
        tx = data.get(AdvertisingData.TX_POWER_LEVEL)
        ad = AdvertisementData(
            local_name=name if isinstance(name, str) else None,
            manufacturer_data={maker[0]: bytes(maker[1])} if maker else {},
            service_data={}, service_uuids=uuids,
            tx_power=tx if isinstance(tx, int) else None, rssi=adv.rssi, platform_data=(adv,))
        address = adv.address.to_string(False)
        device = self.create_or_update_device(address, address, ad.local_name, adv.address, ad)
        self.call_detection_callbacks(device, ad)


class BumbleClient(BaseBleakClient):
    """bleak client backend: a GATT client on the central's Bumble device.

    Parameters
    ----------
    address_or_ble_device : BLEDevice or str
        The strap (``AA:BB:CC:DD:EE:FF``; a scan result carries the address type too).
    disconnected_callback : callable, optional
        Called (no argument) when the link drops without our asking.
    timeout : float
        Connection timeout, seconds: a Bumble connect to an absent device would wait forever.
    bumble : BumbleCentral
        The central (passed through ``BleakClient(..., bumble=central)``).
    services : set of str, optional
        Discover only these services (bleak's ``services=``), which shortens reconnection.
    """

    def __init__(self, address_or_ble_device: BLEDevice | str, *,
                 disconnected_callback: Callable[[], None] | None, timeout: float,
                 bumble: BumbleCentral, services: set[str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        details = getattr(address_or_ble_device, "details", None)
        self._peer_address = details if isinstance(details, Address) else Address(self.address)
        self._central = bumble
        self._only = [UUID(u) for u in services] if services else []
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}
        self._lost: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @property
    def name(self) -> str:
        """The peer's address (a Bumble peer has no OS-given name)."""
        return self.address

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU, bytes."""
        return self._connection.att_mtu if self._connection else 23

    @property
    def is_connected(self) -> bool:
        """Whether the link is up."""
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange MTUs, discover the services; raise :class:`BleakError` on failure."""
        central = self._central
        await central.power_on()
        async with central.connect_lock:
            try:
                connection = await asyncio.wait_for(
                    central.device.connect(self._peer_address), self._timeout)
            except TimeoutError:
                # Bumble's virtual controller keeps a pending connection forever and refuses
                # the next one (its cancel command is a no-op): clear it by hand.
                if central.controller is not None:
                    central.controller.pending_le_connection = None
                central.device.le_connecting = False
                raise BleakDeviceNotFoundError(
                    self.address, f"no connection to {self.address} in {self._timeout} s"
                ) from None
        self._connection = connection
        self._closing = False
        self._lost = asyncio.get_running_loop().create_future()
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        try:
            self._peer = Peer(connection)
            await self._guarded(self._peer.request_mtu(MAX_MTU))
            self.services = await self._guarded(self._discover(self._peer))
            if pair:
                await self.pair()
        except Exception:
            await self.disconnect()
            raise

    async def _guarded(self, operation: Awaitable[_T]) -> _T:
        # Bumble leaves some GATT requests waiting forever when the link drops under them:
        # race every request against the disconnection.
        # Others it cancels, which must not read as our own cancellation.
        task = asyncio.ensure_future(operation)
        await asyncio.wait({task, self._lost}, return_when=asyncio.FIRST_COMPLETED)
        if task.done() and not task.cancelled():
            return task.result()
        task.cancel()
        raise BleakError(f"{self.address} disconnected")

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        for service in await peer.discover_services(self._only):
            s = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(s)
            for char in await peer.discover_characteristics(service=service):
                props = [p.name.lower().replace("_", "-") for p in Characteristic.Properties
                         if p.name and char.properties & p]
                c = BleakGATTCharacteristic(char, char.handle, _uuid(char.uuid), props,
                                            lambda: self.mtu_size - 3, s)
                collection.add_characteristic(c)
                for desc in await peer.discover_descriptors(characteristic=char):
                    collection.add_descriptor(
                        BleakGATTDescriptor(desc, desc.handle, _uuid(desc.type), c))
        return collection

    def _on_disconnection(self, reason: int) -> None:
        unsolicited = not self._closing
        self._connection = self._peer = None
        if not self._lost.done():
            self._lost.set_result(reason)
        self._subscribers.clear()
        if unsolicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        """Disconnect (no-op when the link is already down)."""
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        await connection.disconnect()

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (Bumble's SMP, just-works by default)."""
        if self._connection is None:
            raise BleakError("Not connected")
        await self._guarded(self._connection.pair())

    async def unpair(self) -> None:
        """Forget the peer's keys in the central's key store (if it keeps one)."""
        keystore = self._central.device.keystore
        if keystore is not None:
            await keystore.delete(str(self._peer_address))

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        """Read a characteristic's value."""
        return bytearray(await self._guarded(self._require_peer().read_value(characteristic.obj)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        """Read a descriptor's value."""
        return bytearray(await self._guarded(self._require_peer().read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data: SizedBuffer,
                              response: bool) -> None:
        """Write a characteristic, with or without response."""
        await self._guarded(
            self._require_peer().write_value(characteristic.obj, bytes(data), response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor,
                                    data: SizedBuffer) -> None:
        """Write a descriptor (always with response, as descriptors require)."""
        await self._guarded(self._require_peer().write_value(descriptor.obj, bytes(data), True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        """Subscribe (writes the CCCD); ``callback`` gets each value as a bytearray."""
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        await self._guarded(self._require_peer().subscribe(characteristic.obj, subscriber))
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Unsubscribe."""
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._guarded(self._require_peer().unsubscribe(characteristic.obj, subscriber))
