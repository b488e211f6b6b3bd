"""Response models: the JSON the service promises, shown in the OpenAPI docs at /docs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """What the library answers (app.estimator writes these dicts): a key the schema does not
    promise is refused, so the two descriptions of the response cannot drift apart."""

    model_config = ConfigDict(extra="forbid")


class ModelRef(Answer):
    name: str
    version: str


class ImageInfo(Answer):
    width: int
    height: int


class BoxOut(Answer):
    x: int
    y: int
    width: int
    height: int


class Point(Answer):
    x: float
    y: float


class Landmarks(Answer):
    """The five points YuNet finds, in the uploaded image's pixels (after EXIF rotation). "right" and
    "left" are the person's: their right eye is on the left of a frontal photo."""

    right_eye: Point
    left_eye: Point
    nose: Point = Field(description="the nose tip")
    mouth_right: Point = Field(description="the right corner of the mouth")
    mouth_left: Point = Field(description="the left corner of the mouth")


class AgeInterval(Answer):
    low: int = Field(description="youngest age of the central interval")
    high: int = Field(description="oldest age of the central interval")
    mass: float = Field(description="probability the interval holds (at least the configured mass)")


class Distribution(Answer):
    ages: list[int]
    probabilities: list[float]


class FaceOut(Answer):
    box: BoxOut = Field(description="face box in the uploaded image's pixels (after EXIF rotation)")
    detection_score: float | None = Field(
        description="the detector's confidence: with DETECTOR=yunet (the default) or dnn a score in [0, 1] that "
        "the box holds a face; with DETECTOR=haar the cascade's level weight (unbounded, larger is surer); "
        "null when detect=false"
    )
    landmarks: Landmarks | None = Field(
        description="five facial points (DETECTOR=yunet); null with a box-only detector (dnn, haar) or detect=false"
    )
    age: float = Field(description="expected age, Σ p·age")
    age_std: float = Field(description="standard deviation of the age distribution")
    age_interval: AgeInterval
    distribution: Distribution | None = Field(None, description="omitted when include_distribution=false")


class Timings(Answer):
    decode: float
    detect: float
    infer: float
    total: float


class PredictResponse(Answer):
    model: ModelRef
    image: ImageInfo
    faces: list[FaceOut]
    timings_ms: Timings


class FuseRequest(BaseModel):
    distributions: list[list[float]] = Field(
        min_length=1,
        description="one person's age distributions, one per frame (each the `probabilities` of a face that "
        "POST /predict answered, over the model's ages), oldest first",
    )


class FuseResponse(Answer):
    model: ModelRef
    frames: int = Field(description="distributions fused")
    correlation: float = Field(description="the model's fitted error correlation between frames of one person, ρ")
    softening: float = Field(description="the model's fitted softening s of a camera frame (1: as the model answers)")
    effective_frames: float = Field(description="what the frames are worth as independent ones: n / (1 + (n − 1)ρ)")
    age: float = Field(description="expected age of the fused distribution")
    age_std: float
    age_interval: AgeInterval
    distribution: Distribution


class ErrorResponse(BaseModel):
    error: str = Field(description="a stable machine-readable code")
    detail: str = Field(description="a human sentence")
    request_id: str | None = None


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: ModelRef | None = None
    detail: str | None = None
