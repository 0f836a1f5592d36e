"""Draws a GameState as an RGB frame with NumPy: sky, parallax hills, terrain, spikes, coins,
the player and a coin counter. Colours come from the level's theme (one of a few), hill shapes
from its own seed.

A frame is first drawn as a map of palette indices (int16), then looked up in a palette of
packed RGBA words in one gather: about 5x faster than assigning colours through boolean masks,
which keeps rendering well ahead of the H.264 encoder.
"""

from __future__ import annotations

import numpy as np

from pipelines.synth.game import PLAYER_H, PLAYER_W, TILE, GameState, Level


class Renderer:
    """Precomputes what does not move with the player, then draws one frame per call."""

    def __init__(self, level: Level, width: int = 320, height: int = 180):
        self.level, self.width, self.height = level, width, height
        rng = np.random.default_rng(level.palette)
        sky_top, sky_bottom = rng.integers(20, 255, 3), rng.integers(20, 255, 3)
        ramp = np.linspace(0, 1, height)[:, None]
        sky = sky_top * (1 - ramp) + sky_bottom * ramp  # palette entries 0..height-1
        named = {
            "hill": rng.integers(30, 200, 3),
            "ground_a": rng.integers(40, 180, 3),
            "ground_b": rng.integers(40, 180, 3),
            "grass": rng.integers(40, 255, 3),
            "spike": (200, 200, 210),
            "coin": (255, 215, 0),
            "player": (230, 40, 200),
            "eye": (255, 255, 255),
        }
        self.index = {name: height + i for i, name in enumerate(named)}
        rgb = np.concatenate([sky, np.array(list(named.values()))]).astype(np.uint8)
        rgba = np.zeros((len(rgb), 4), np.uint8)
        rgba[:, :3] = rgb
        self.palette = rgba.view(np.uint32)[:, 0]
        # Hills scroll at half speed: one height per pixel column of the half-width world.
        xs = np.arange(level.width_px // 2 + width)
        phase = np.random.default_rng(level.scenery).uniform(0, 2 * np.pi, 2)
        self.hills = (
            height * 0.45 + 18 * np.sin(xs / 37.0 + phase[0]) + 9 * np.sin(xs / 13.0 + phase[1])
        ).astype(np.int16)
        self.rows = np.arange(height, dtype=np.int16)[:, None]
        self.sky = np.broadcast_to(self.rows, (height, width)).astype(np.int16)
        # Ground tiles of two colours at random, fixed per level: a checker would repeat every
        # two tiles, and under a one-tile scroll (see camera_x) moving left and moving right
        # would draw the same frame, as a wagon wheel spins both ways on film.
        tile_rows, columns = -(-height // TILE), len(level.ground)
        texture = np.random.default_rng([level.scenery, 1]).integers(0, 2, (tile_rows, columns))
        self.ground_tiles = (self.index["ground_a"] + texture).astype(np.int16)

    def camera_x(self, state: GameState) -> int:
        """The player stays near a third of the screen width while the level allows; the camera
        moves in whole tiles, as a tile-based console scrolls (see game.TILE)."""
        x = np.clip(state.x - self.width / 3, 0, self.level.width_px - self.width)
        return int(x // TILE) * TILE

    def draw(self, state: GameState) -> np.ndarray:
        """The frame as a (height, width, 3) uint8 RGB array."""
        cam = self.camera_x(state)
        xs = cam + np.arange(self.width)
        columns = xs // TILE
        hills_x = cam // (2 * TILE) * TILE  # half the camera's speed, in whole tiles too
        hill_top = self.hills[hills_x : hills_x + self.width]
        ground_top = (self.height - self.level.ground[columns] * TILE).astype(np.int16)
        ground_top[ground_top >= self.height] = 2 * self.height  # a pit: no ground

        ids = np.where(self.rows >= hill_top, np.int16(self.index["hill"]), self.sky)
        terrain = self.ground_tiles[self.rows // TILE, columns]
        terrain = np.where(self.rows < ground_top + 3, np.int16(self.index["grass"]), terrain)
        ids = np.where(self.rows >= ground_top, terrain, ids)

        self.draw_spikes(ids, xs, columns, ground_top)
        self.draw_coins(ids, state, cam)
        self.draw_player(ids, state, cam)
        ids[4:8, 4 : 4 + 4 * min(state.score, 75) : 4] = self.index["coin"]  # coin counter
        return self.palette[ids].view(np.uint8).reshape(self.height, self.width, 4)[..., :3]

    def draw_spikes(
        self, ids: np.ndarray, xs: np.ndarray, columns: np.ndarray, ground_top: np.ndarray
    ) -> None:
        spiked = np.flatnonzero(self.level.spikes[columns])
        if len(spiked) == 0:
            return
        tip = ground_top[spiked] - (TILE - np.abs(2 * (xs[spiked] % TILE) - TILE))  # triangles
        spike = (self.rows >= tip) & (self.rows < ground_top[spiked])
        ids[:, spiked] = np.where(spike, self.index["spike"], ids[:, spiked])

    def draw_coins(self, ids: np.ndarray, state: GameState, cam: int) -> None:
        first, last = cam // TILE, (cam + self.width) // TILE + 1
        for column in np.flatnonzero(self.level.coins[first:last]) + first:
            if column in state.collected:
                continue
            cx = column * TILE + TILE // 2 - cam
            cy = self.height - (self.level.ground[column] + self.level.coins[column]) * TILE
            y0, x0 = max(cy - 3, 0), max(cx - 3, 0)
            ids[y0 : max(cy + 3, 0), x0 : max(cx + 3, 0)] = self.index["coin"]

    def draw_player(self, ids: np.ndarray, state: GameState, cam: int) -> None:
        left = int(state.x) - cam
        top = self.height - int(state.y) - PLAYER_H
        y0, y1 = max(top, 0), min(top + PLAYER_H, self.height)
        if y0 >= y1:
            return  # fallen below the screen
        ids[y0:y1, left : left + PLAYER_W] = self.index["player"]
        eye = left + (6 if state.facing > 0 else 1)
        ids[max(top + 3, 0) : max(top + 6, 0), eye : eye + 3] = self.index["eye"]
