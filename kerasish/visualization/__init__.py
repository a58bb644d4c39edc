"""`keras.visualization`: drawing boxes and masks on images, and image galleries.

`draw_segmentation_masks` is torch/NumPy only. `draw_bounding_boxes` needs
OpenCV (`cv2`) and the galleries need matplotlib; both are imported only when
those functions run, with Keras's messages when they are missing.
"""

from kerasish.visualization.draw_bounding_boxes import draw_bounding_boxes
from kerasish.visualization.draw_segmentation_masks import draw_segmentation_masks
from kerasish.visualization.plot_bounding_box_gallery import plot_bounding_box_gallery
from kerasish.visualization.plot_image_gallery import plot_image_gallery
from kerasish.visualization.plot_segmentation_mask_gallery import plot_segmentation_mask_gallery

__all__ = [
    "draw_bounding_boxes",
    "draw_segmentation_masks",
    "plot_bounding_box_gallery",
    "plot_image_gallery",
    "plot_segmentation_mask_gallery",
]
