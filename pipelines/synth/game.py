"""A procedural side-scrolling platformer whose every frame is caused by a known action.

The world is a row of terrain columns (ground height in tiles, 0 = a pit) with spikes and
coins; the player runs, jumps under gravity, collects coins and respawns at the last safe
spot after falling into a pit or touching a spike. Everything follows from the level seed,
so a video and its action log can be regenerated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACTIONS: tuple[str, ...] = ("noop", "left", "right", "jump", "left+jump", "right+jump")
ACTION_IDS: dict[str, int] = {name: i for i, name in enumerate(ACTIONS)}

# Tile-based, as consoles drew and scrolled their worlds: a tile is 16 source pixels, the camera
# moves in whole tiles (see Renderer.camera_x) and a running player crosses one tile in 3 frames,
# one frame of the curated 10 FPS. At the curated 160x90 a tile is 8 pixels, one token of the
# `tiny` tokenizer's 8-pixel patches, so a step of scroll shifts the scene by whole tokens. With
# the old 10-pixel tiles and 3 px/frame the scene moved 4.5 curated pixels a frame and every
# token's content changed, which the demo's dynamics model (minutes of CPU) never learned to
# draw. (8-pixel tiles with 4-pixel patches worked as well, but the 920 tokens a frame made the
# demo's tokenizer and dynamics stages 7x slower than the 240 of patch 8.)
TILE = 16  # pixels per terrain tile at the 320x180 source resolution
RUN_SPEED = TILE / 3  # pixels per frame at 30 FPS
JUMP_SPEED = 7.5
GRAVITY = 0.55
PLAYER_W, PLAYER_H = 10, 14
# Colour schemes levels draw from. A real game has a handful of worlds, not a new colour scheme
# per level: with one per level, the demo's 10-video corpus held out clips of colours no model
# had seen (a fifth of their tokens were codes under 0.1% of the training tokens), and the
# dynamics model could only guess them.
THEMES = 4


@dataclass(frozen=True)
class Level:
    """Terrain and items of one level, in tile columns."""

    ground: np.ndarray  # (columns,) ground height in tiles; 0 is a pit
    spikes: np.ndarray  # (columns,) bool: a spike sits on this column's ground
    coins: np.ndarray  # (columns,) coin height in tiles above ground, 0 = none
    palette: int  # which of the THEMES colour schemes the renderer uses
    scenery: int  # seed of the background's shape (hills), apart from its colours

    @property
    def width_px(self) -> int:
        return len(self.ground) * TILE


def make_level(seed: int, columns: int = 2000) -> Level:
    """Terrain built from short segments: flat runs, steps, pits and spiked stretches."""
    rng = np.random.default_rng(seed)
    ground = np.zeros(columns, np.int16)
    spikes = np.zeros(columns, bool)
    coins = np.zeros(columns, np.int16)
    height, col = 3, 0
    ground[:12] = height  # a safe start
    col = 12
    while col < columns:
        length = int(rng.integers(4, 14))
        kind = rng.choice(["flat", "step", "pit", "spikes"], p=[0.4, 0.3, 0.15, 0.15])
        end = min(col + length, columns)
        if kind == "step":
            height = int(np.clip(height + rng.choice([-2, -1, 1, 2]), 1, 5))
        if kind == "pit":
            end = min(col + int(rng.integers(2, 5)), columns)  # always jumpable
            ground[col:end] = 0
        else:
            ground[col:end] = height
            if kind == "spikes" and end - col > 4:
                spikes[col + 2 : col + 4] = True
        if rng.random() < 0.5:
            coins[col:end:2] = np.where(ground[col:end:2] > 0, int(rng.integers(2, 5)), 0)
        col = end
    return Level(ground=ground, spikes=spikes, coins=coins,
                 palette=int(rng.integers(0, THEMES)), scenery=int(rng.integers(0, 1 << 30)))  # fmt: skip


@dataclass
class GameState:
    """The mutable part of a game: where the player is, how it moves, what it collected."""

    level: Level
    x: float = 30.0  # player's left edge, world pixels
    y: float = 0.0  # player's feet above the bottom of the screen, pixels
    vx: float = 0.0
    vy: float = 0.0
    on_ground: bool = True
    facing: int = 1
    score: int = 0
    deaths: int = 0
    safe_x: float = 30.0
    collected: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.y = self.ground_px(self.x)

    def ground_px(self, x: float) -> float:
        """Height of the highest ground under the player's footprint (0 over a pit)."""
        first = max(int(x) // TILE, 0)
        last = min(int(x + PLAYER_W - 1) // TILE, len(self.level.ground) - 1)
        return float(self.level.ground[first : last + 1].max()) * TILE

    def step(self, action: int) -> None:
        """Advance one frame (1/30 s) under `action`."""
        name = ACTIONS[action]
        self.vx = RUN_SPEED * (("right" in name) - ("left" in name))
        if self.vx:
            self.facing = 1 if self.vx > 0 else -1
        if "jump" in name and self.on_ground:
            self.vy, self.on_ground = JUMP_SPEED, False

        # Horizontal: a wall higher than a small step blocks the move.
        new_x = float(np.clip(self.x + self.vx, 0, self.level.width_px - PLAYER_W))
        if self.ground_px(new_x) <= self.y + TILE // 2:
            self.x = new_x

        # Vertical: gravity, then land on whatever ground is under the feet.
        self.vy -= GRAVITY
        self.y += self.vy
        floor = self.ground_px(self.x)
        if self.y <= floor and floor > 0:
            self.y, self.vy, self.on_ground = floor, 0.0, True
        else:
            self.on_ground = False

        column = int(self.x + PLAYER_W / 2) // TILE
        if (self.on_ground and self.level.spikes[column]) or self.y < -PLAYER_H * 2:
            self.respawn()
            return
        if self.on_ground:
            self.safe_x = self.x
        self.collect(column)

    def collect(self, column: int) -> None:
        height = self.level.coins[column]
        if height and column not in self.collected:
            coin_y = (self.level.ground[column] + height) * TILE
            if self.y <= coin_y <= self.y + PLAYER_H + TILE:
                self.collected.add(column)
                self.score += 1

    def respawn(self) -> None:
        self.deaths += 1
        self.x = max(self.safe_x - 3 * TILE, 0.0)
        self.y, self.vy, self.on_ground = self.ground_px(self.x), 0.0, True
        while self.y == 0:  # never respawn over a pit
            self.x += TILE
            self.y = self.ground_px(self.x)


def player_actions(seed: int, frames: int) -> np.ndarray:
    """A plausible player: mostly runs right and jumps, sometimes waits or turns back.

    Each choice is held for a few frames (a human presses keys for ~0.1-0.5 s), so the
    10 FPS curated clips still show every action.
    """
    rng = np.random.default_rng(seed)
    weights = np.array([0.12, 0.14, 0.34, 0.12, 0.08, 0.20])
    actions = np.empty(frames, np.int8)
    t = 0
    while t < frames:
        hold = int(rng.integers(3, 16))
        actions[t : t + hold] = rng.choice(len(ACTIONS), p=weights)
        t += hold
    return actions
