"""samples.photo reads scikit-image's shipped PNGs with OpenCV: the pixels must be skimage.data's exactly (uint8,
lossless PNG), or every golden set made from them would move."""
import numpy as np
import pytest
from skimage import data

from matteconv import samples


@pytest.mark.parametrize("name", samples.PHOTOS)
def test_photo_is_skimage_data_pixel_for_pixel(name):
    got, want = samples.photo(name), getattr(data, name)()
    assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want)


def test_unknown_photo_is_refused():
    with pytest.raises(ValueError, match="unknown photo 'lena'"):
        samples.photo("lena")
